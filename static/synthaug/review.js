// The review page's keyboard and prefetch behaviour. No inline script: the CSP forbids it.
//
// Keys act on the item on screen (the first .review-item not hidden): A approve, R then 1-7
// reject with that reason, D then 1-4 re-tag, S skip, U undo, F show all, Esc cancels R/D.
// While a decision is on its way, the next (prefetched) item is shown at once; the server's
// answer then replaces the whole stage with the items the reviewer now holds.
(function () {
  "use strict";
  var mode = null;
  var busy = false;

  function current() {
    return document.querySelector("#review-stage .review-item:not([hidden])");
  }

  function setMode(next, text) {
    mode = next;
    var item = current();
    var hint = item && item.querySelector(".key-mode");
    if (hint) hint.textContent = text || "";
  }

  function submit(item, action) {
    var button = item.querySelector('.decision-form button[value="' + action + '"]');
    if (!button || busy) return;
    // click(), not requestSubmit(): htmx learns the submitter (action=...) from the click.
    button.click();
  }

  function choose(item, selector, digit) {
    var select = item.querySelector(selector);
    if (!select) return false;
    var index = parseInt(digit, 10);
    // Option 0 is the "choose…" placeholder; digits count the real options from 1.
    if (!(index >= 1 && index < select.options.length)) return false;
    select.selectedIndex = index;
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (!document.getElementById("review-stage")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" ||
      target.tagName === "SELECT" || target.isContentEditable);
    if (typing) {
      if (event.key === "Escape") target.blur();
      return;
    }
    var key = event.key.toLowerCase();
    var item = current();
    if (key === "escape") { setMode(null); return; }
    if (key === "u") {
      var undo = document.querySelector("#review-stage .undo-form button");
      if (undo && !busy) { event.preventDefault(); undo.click(); }
      return;
    }
    if (!item) return;
    if (mode === "reject" && /^[1-9]$/.test(key)) {
      event.preventDefault();
      if (choose(item, ".reject-reason", key)) { setMode(null); submit(item, "reject"); }
      return;
    }
    if (mode === "retag" && /^[1-9]$/.test(key)) {
      event.preventDefault();
      if (choose(item, ".retag-level", key)) { setMode(null); submit(item, "retag"); }
      return;
    }
    if (key === "a") { event.preventDefault(); setMode(null); submit(item, "approve"); }
    else if (key === "s") { event.preventDefault(); setMode(null); submit(item, "skip"); }
    else if (key === "r") { event.preventDefault(); setMode("reject", "Reject: press 1–7 for the reason, Esc to cancel."); }
    else if (key === "d") { event.preventDefault(); setMode("retag", "Re-tag: press 1–4 for the difficulty, Esc to cancel."); }
    else if (key === "f") {
      var expand = item.querySelector("[data-expand]");
      if (expand) { event.preventDefault(); expand.click(); }
    }
  });

  // A reject without a reason is refused by the server too; say so before sending.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("decision-form")) return;
    var action = event.submitter && event.submitter.value;
    if (action === "reject" && !form.querySelector(".reject-reason").value) {
      event.preventDefault();
      event.stopPropagation();
      setMode("reject", "Choose a reason first: press 1–7.");
    }
  }, true);

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form.closest || !form.closest("#review-stage")) return;
    busy = true;
    var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    var action = trigger && trigger.submitter && trigger.submitter.value;
    if (form.classList.contains("decision-form") && action !== "retag") {
      // Show the prefetched next item straight away; the answer confirms it.
      var item = form.closest(".review-item");
      var next = item && item.nextElementSibling;
      if (next && next.classList.contains("review-item")) {
        item.hidden = true;
        next.hidden = false;
      }
    }
  });
  document.addEventListener("htmx:afterRequest", function () { busy = false; });

  // A refused decision (400, or 409 for a stale claim) comes back as the stage with the
  // reason on it: swap it in, so the reviewer reads why instead of seeing nothing happen.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if ((status === 400 || status === 409) && event.detail.target &&
        event.detail.target.id === "review-stage") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
