// Small listeners only: toasts, confirmations for plain forms, copy buttons.
(function () {
  "use strict";
  function addToast(message, level) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (level || "info");
    var span = document.createElement("span");
    span.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    el.appendChild(span);
    el.appendChild(close);
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 6000);
  }
  document.addEventListener("toast", function (e) {
    var d = e.detail || {};
    addToast(d.message || d.value || "", d.level);
  });
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.classList && t.classList.contains("toast-close")) t.parentElement.remove();
    if (t.dataset && t.dataset.copy) {
      var src = document.getElementById(t.dataset.copy);
      if (src && navigator.clipboard) {
        navigator.clipboard.writeText(src.innerText).then(function () { addToast("Copied.", "success"); });
      }
    }
  });
  // Plain (non-htmx) forms ask before destructive actions; htmx uses hx-confirm.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var msg = form.getAttribute("data-confirm");
    if (!msg || form.hasAttribute("hx-post")) return;
    if (!window.confirm(msg)) { e.preventDefault(); return; }
    // Asked here: the server's "Are you sure?" step (for browsers without JavaScript) is skipped.
    var done = form.querySelector("input[name=_confirmed]");
    if (!done) {
      done = document.createElement("input");
      done.type = "hidden";
      done.name = "_confirmed";
      form.appendChild(done);
    }
    done.value = "1";
  });
  // Show server errors from htmx requests as toasts instead of failing silently.
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    var text = "Something went wrong (" + xhr.status + ").";
    if (xhr.status === 403) text = "You do not have permission to do this.";
    addToast(text, "error");
  });
  // An error summary (a failed save) takes the focus, so it is seen and read out at once.
  function focusSummary(root) {
    var el = (root || document).querySelector("[data-autofocus]");
    if (!el) return;
    el.scrollIntoView({ block: "start" });
    el.focus({ preventScroll: true });
  }
  document.addEventListener("htmx:afterSettle", function (e) { focusSummary(e.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(function (el) {
      setTimeout(function () { el.remove(); }, 8000);
    });
    focusSummary(document);
  });
})();
