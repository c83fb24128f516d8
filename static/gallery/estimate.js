/* The launch form's estimate: as the settings change, ask the server for the estimate of the
   form's current values (the same fields the form submits) and swap it in through live.js. */
(function () {
  "use strict";
  var form = document.getElementById("run-form");
  var region = document.querySelector("[data-estimate-url]");
  if (!form || !region || !window.styleGalleryLive) return;
  var timer = null;

  function refresh() {
    var query = new URLSearchParams(window.location.search);
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrfmiddlewaretoken") query.set(name, value);
    });
    window.styleGalleryLive.load(region.getAttribute("data-estimate-url") + "?" + query.toString());
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 250);
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
})();
