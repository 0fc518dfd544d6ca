// Staff billing admin (no inline script: the CSP forbids it).
document.addEventListener("click", function (event) {
  var copy = event.target.closest("[data-copy-target]");
  if (!copy) return;
  var input = document.getElementById(copy.getAttribute("data-copy-target"));
  input.select();
  if (navigator.clipboard) navigator.clipboard.writeText(input.value);
  copy.textContent = "Copied";
});
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});
