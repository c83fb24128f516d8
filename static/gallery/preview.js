/* The instant preview: moving the "how much style" slider asks the preview lane for that alpha
   (a POST of the panel's form) and shows the server-rendered answer through live.js; while the
   picture is being computed the script asks again, each GET waiting briefly on the server. */
(function () {
  "use strict";
  var form = document.querySelector("[data-preview-form]");
  if (!form || !window.styleGalleryLive) return;
  var live = window.styleGalleryLive;
  var slider = form.querySelector("input[type=range]");
  var output = form.querySelector("output");
  var asked = 0;
  var timer = null;

  function state() {
    var element = document.getElementById("preview-state");
    return element ? element.getAttribute("data-state") : "none";
  }

  /* Each GET waits up to 3 s on the server; between them the page rests a moment (so the
     network goes quiet), and after about three minutes without an answer it stops asking. */
  function follow(mine, tries) {
    tries = tries || 0;
    if (mine !== asked || state() !== "pending") return;
    if (tries >= 50) {
      var status = document.getElementById("preview-status");
      if (status) status.textContent = "The preview worker is not answering. Is it running? (make run starts it.)";
      return;
    }
    var url = form.getAttribute("data-fragment-url") + "?alpha=" + encodeURIComponent(slider.value);
    function again(delay) { window.setTimeout(function () { follow(mine, tries + 1); }, delay); }
    live.load(url, null, "preview").then(function () { again(600); }, function () { again(2000); });
  }

  function ask() {
    var mine = ++asked;
    live.load(form.action, new FormData(form), "preview").then(function () { follow(mine); });
  }

  slider.addEventListener("input", function () {
    output.textContent = Number(slider.value).toFixed(2);
    window.clearTimeout(timer);
    timer = window.setTimeout(ask, 150);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    ask();
  });
  // The picture at the slider's position, unless the page already shows it.
  if (state() !== "done") ask();
})();
