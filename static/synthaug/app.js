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
})();
