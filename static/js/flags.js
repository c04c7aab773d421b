// Flags pages: keep the visible number of a percentage slider in step with the slider.
(function () {
  "use strict";
  document.addEventListener("input", function (e) {
    var el = e.target;
    if (!el || el.type !== "range" || !el.id) return;
    var out = document.getElementById(el.id + "-out");
    if (out) out.textContent = el.value;
  });
})();
