// Progressive enhancement for the order page's payment block: while the payment is
// processing, re-fetch the block, first after 2 s, then less often (x1.5 up to 30 s), for as
// long as it is processing (the outcome can still arrive). When its state changes, reload
// the page so the order status and the invoice block update too; while it stays the same,
// swap the block in place (it may now say the payment is taking longer than usual).
// Without JavaScript the block's Refresh button does the same.
(function () {
  "use strict";
  var FIRST_MS = 2000, FACTOR = 1.5, MAX_MS = 30000;
  if (window.__paymentPolling) { return; }
  window.__paymentPolling = true;

  function poll(delay) {
    var block = document.getElementById("payment-block");
    if (!block || block.dataset.polling !== "true") { return; }
    setTimeout(function () {
      fetch(block.dataset.refreshUrl, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.querySelector("#payment-block");
          if (fresh && fresh.dataset.state !== block.dataset.state) { window.location.reload(); return; }
          if (fresh) { block.replaceWith(fresh); }
          poll(Math.min(delay * FACTOR, MAX_MS));
        }, function () { poll(Math.min(delay * FACTOR, MAX_MS)); });
    }, delay);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { poll(FIRST_MS); });
  } else {
    poll(FIRST_MS);
  }
})();
