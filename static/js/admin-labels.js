// Every admin page (templates/admin/base_site.html). Django's tabular inlines put a field's
// name in the column header only, so the inputs of each line have no label (axe: label,
// aria-input-field-name on select2's product box). Each control gets an accessible name from
// its column: "Quantity, line 2". Lines added with "Add another" and select2 boxes built later
// are named too (a MutationObserver). No inline script: the CSP forbids it.
(function () {
  "use strict";
  function columnName(cell) {
    var table = cell.closest("table");
    var name = cell.className.split(/\s+/).filter(function (c) { return c.indexOf("field-") === 0; })[0];
    if (!table || !name) return cell.classList.contains("delete") ? "Delete" : "";
    var header = table.querySelector("thead th.column-" + name.slice(6));
    return header ? header.textContent.replace(/\s+/g, " ").trim() : "";
  }
  function label() {
    document.querySelectorAll(".inline-group .tabular tbody tr.form-row").forEach(function (row, index) {
      var line = row.classList.contains("empty-form") ? "new line" : "line " + (index + 1);
      row.querySelectorAll("td").forEach(function (cell) {
        var column = columnName(cell);
        if (!column) return;
        var controls = cell.querySelectorAll(
          "input:not([type=hidden]), select, textarea, .select2-selection[role=combobox], .select2-selection__rendered[role=textbox]"
        );
        controls.forEach(function (control) {
          var labelled = control.id && document.querySelector('label[for="' + control.id + '"]');
          var wanted = column + ", " + line;
          if (!labelled && control.getAttribute("aria-label") !== wanted) {
            control.setAttribute("aria-label", wanted);
          }
        });
      });
    });
  }
  var queued = false;
  function soon() {
    if (queued) return;
    queued = true;
    window.requestAnimationFrame(function () { queued = false; label(); });
  }
  function start() {
    label();
    document.querySelectorAll(".inline-group").forEach(function (group) {
      new MutationObserver(soon).observe(group, { childList: true, subtree: true });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  window.addEventListener("load", label);
})();
