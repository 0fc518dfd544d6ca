// Every admin page (templates/admin/base_site.html). A table wider than its box scrolls inside
// it (phones); such a box must be reachable by keyboard to scroll it (WCAG 2.1.1), so it gets
// a tab stop and a name from its heading. No inline script: the CSP forbids it.
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll(".inline-group, #changelist .results").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        var heading = box.querySelector("h2");
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", (heading ? heading.textContent.trim() : "Table") + " (scrolls sideways)");
        box.dataset.shopScrollBox = "1";
      } else if (!scrolls && box.dataset.shopScrollBox) {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
        delete box.dataset.shopScrollBox;
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mark);
  } else {
    mark();
  }
  window.addEventListener("resize", mark);
})();
