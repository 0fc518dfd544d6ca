// Progressive enhancement for the order page's payment block: while the payment is
// processing, re-fetch the block every 2 s (for up to 2 minutes); when its state changes,
// reload the page so the order status and the invoice block update too. Without
// JavaScript the block's Refresh button does the same.
(function () {
  "use strict";
  var POLL_MS = 2000, POLL_FOR_MS = 120000;
  if (window.__paymentPolling) { return; }
  window.__paymentPolling = true;

  function poll(startedAt) {
    var block = document.getElementById("payment-block");
    if (!block || block.dataset.polling !== "true" || Date.now() - startedAt > POLL_FOR_MS) { return; }
    setTimeout(function () {
      fetch(block.dataset.refreshUrl, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.querySelector("#payment-block");
          if (fresh && fresh.dataset.state !== block.dataset.state) { window.location.reload(); return; }
          poll(startedAt);
        }, function () { poll(startedAt); });
    }, POLL_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { poll(Date.now()); });
  } else {
    poll(Date.now());
  }
})();
