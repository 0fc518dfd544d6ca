// Progressive enhancement only: every page works with JavaScript off.
(function () {
  "use strict";

  // Submit buttons marked data-once disable themselves after the first click.
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[data-once]");
    if (button) { setTimeout(function () { button.disabled = true; }, 0); }
  });

  // Invoice block: refresh in place, and poll briefly while the number is pending.
  var POLL_MS = 2000, POLL_FOR_MS = 90000;

  function refresh(block) {
    return fetch(block.dataset.refreshUrl, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        block.replaceWith(fresh);
        wire(fresh);
        return fresh;
      });
  }

  function wire(block) {
    var button = block.querySelector("#invoice-refresh");
    if (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        refresh(block).catch(function () { window.location.reload(); });
      });
    }
  }

  function poll(startedAt) {
    var block = document.getElementById("invoice-block");
    if (!block || block.dataset.pending !== "true" || Date.now() - startedAt > POLL_FOR_MS) { return; }
    setTimeout(function () {
      refresh(block).then(function () { poll(startedAt); }, function () { poll(startedAt); });
    }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("invoice-block");
    if (!block) { return; }
    wire(block);
    poll(Date.now());
  });
})();
