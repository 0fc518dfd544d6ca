// Progressive enhancement only: every page works with JavaScript off.
(function () {
  "use strict";

  // Submit buttons marked data-once disable themselves after the first click (only the one
  // that submitted: the checkout's "Apply" must not disable "Place order").
  document.addEventListener("submit", function (event) {
    var button = event.submitter !== undefined ? event.submitter : event.target.querySelector("button[data-once]");
    if (button && button.matches("[data-once]")) { setTimeout(function () { button.disabled = true; }, 0); }
  });

  // Checkout: Enter in the coupon field applies the coupon, Enter in an address field places
  // the order (without JavaScript, Enter anywhere applies: the first button; nothing is placed).
  document.addEventListener("keydown", function (event) {
    var form = event.target.form;
    if (event.key !== "Enter" || !form || form.id !== "checkout-form" || event.target.tagName !== "INPUT") { return; }
    var action = event.target.name === "coupon" ? "apply" : "place";
    var button = form.querySelector('button[name="action"][value="' + action + '"]');
    if (button) { event.preventDefault(); button.click(); }
  });

  // A page shown again with form errors: the summary takes the focus, so it is read first.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });

  // Invoice block: refresh in place, and poll while the number is pending: first after 2 s,
  // then less often (x1.5 up to 30 s), until the number is there.
  var FIRST_MS = 2000, FACTOR = 1.5, MAX_MS = 30000;

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

  function poll(delay) {
    var block = document.getElementById("invoice-block");
    if (!block || block.dataset.pending !== "true") { return; }
    var next = Math.min(delay * FACTOR, MAX_MS);
    setTimeout(function () {
      refresh(block).then(function () { poll(next); }, function () { poll(next); });
    }, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("invoice-block");
    if (!block) { return; }
    wire(block);
    poll(FIRST_MS);
  });
})();
