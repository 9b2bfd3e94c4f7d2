// Behaviour lives here, not in inline handlers: the Content Security Policy forbids inline
// script and htmx runs with allowEval off.
(function () {
  "use strict";

  // Buttons and forms that ask before doing something: <form data-confirm="Sure?">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Show the whole of a truncated value: <button data-expand="#id">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-expand]");
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-expand"));
    if (target) {
      target.classList.remove("clamped");
      button.remove();
    }
  });

  // The server clamps values by their length; one that fits anyway needs no button.
  function unclampWhatFits(root) {
    var buttons = root.querySelectorAll ? root.querySelectorAll("[data-expand]") : [];
    Array.prototype.forEach.call(buttons, function (button) {
      var target = document.querySelector(button.getAttribute("data-expand"));
      if (target && target.classList.contains("clamped") &&
          target.scrollHeight <= target.clientHeight + 1) {
        target.classList.remove("clamped");
        button.remove();
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { unclampWhatFits(document); });

  // <form data-drop-empty>: empty fields stay out of htmx requests, so the pushed address
  // names only the filters in use (?origin=synthetic, not ?origin=&status=&...).
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    var data = event.detail.formData;
    if (!data || !elt || !elt.hasAttribute || !elt.hasAttribute("data-drop-empty")) return;
    var empty = [];
    data.forEach(function (value, key) { if (value === "") empty.push(key); });
    empty.forEach(function (key) { data.delete(key); });
  });
  document.addEventListener("htmx:load", function (event) { unclampWhatFits(event.target); });
})();
