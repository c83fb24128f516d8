/* Style Gallery lightbox: open a grid image (click or Enter); ← / → step, 1 / F switch between
   pixel-for-pixel and fitted, Esc closes and gives the focus back to the thumbnail. Tab stays
   inside while it is open. Images fitted larger than they are stay sharp (pixelated), as in
   the compare page's zoomed crop. No dependencies. */
(function () {
  "use strict";
  var box = document.getElementById("lightbox");
  if (!box) return;
  var viewer = box.querySelector("[data-lightbox-viewer]");
  var image = box.querySelector("[data-lightbox-image]");
  var caption = box.querySelector("[data-lightbox-caption]");
  var count = box.querySelector("[data-lightbox-count]");
  var download = box.querySelector("[data-lightbox-download]");
  var closeButton = box.querySelector("[data-lightbox-close]");
  var scaleButton = box.querySelector("[data-lightbox-scale]");
  var links = [];
  var index = 0;
  var actualSize = false;

  function collect() {
    return Array.prototype.slice.call(document.querySelectorAll(".grid-link[href]"));
  }

  function magnified() {
    return !actualSize && image.naturalWidth > 0 && image.getBoundingClientRect().width > image.naturalWidth;
  }

  function layout() {
    box.classList.toggle("lightbox-actual", actualSize);
    // A toggle: its name stays "1:1" and its pressed state says whether the image is shown so.
    scaleButton.setAttribute("aria-pressed", actualSize ? "true" : "false");
    image.classList.toggle("pixelated", magnified());
  }

  function setActualSize(value) {
    actualSize = value;
    layout();
  }

  function show(position) {
    links = collect();
    if (!links.length) return;
    index = (position + links.length) % links.length;
    var link = links[index];
    image.src = link.href;
    var text = link.getAttribute("data-caption") || "";
    var thumbnail = link.querySelector("img");
    image.alt = thumbnail ? thumbnail.alt : text; // run, iteration and loss
    caption.textContent = text;
    count.textContent = index + 1 + " / " + links.length;
    download.href = link.getAttribute("data-download") || link.href;
    layout();
  }

  function open(link) {
    box.hidden = false;
    document.body.classList.add("lightbox-open");
    show(collect().indexOf(link));
    closeButton.focus();
  }

  function close() {
    box.hidden = true;
    image.removeAttribute("src");
    document.body.classList.remove("lightbox-open");
    if (links[index]) links[index].focus();
  }

  function focusables() {
    return Array.prototype.slice.call(box.querySelectorAll("button, a[href], [tabindex=\"0\"]")).filter(function (el) {
      return el.offsetParent !== null;
    });
  }

  image.addEventListener("load", layout);
  window.addEventListener("resize", function () { if (!box.hidden) layout(); });
  document.addEventListener("click", function (event) {
    var link = event.target.closest(".grid-link[href]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    open(link);
  });
  box.addEventListener("click", function (event) {
    if (event.target === box || event.target.classList.contains("lightbox-stage")) close();
  });
  closeButton.addEventListener("click", close);
  scaleButton.addEventListener("click", function () { setActualSize(!actualSize); });
  box.querySelector("[data-lightbox-prev]").addEventListener("click", function () { show(index - 1); });
  box.querySelector("[data-lightbox-next]").addEventListener("click", function () { show(index + 1); });
  document.addEventListener("keydown", function (event) {
    if (box.hidden) return;
    if (event.key === "Escape") { event.preventDefault(); close(); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); show(index - 1); }
    else if (event.key === "ArrowRight") { event.preventDefault(); show(index + 1); }
    else if (event.key === "1") { setActualSize(true); }
    else if (event.key === "f" || event.key === "F") { setActualSize(false); }
    else if (event.key === "Tab") {
      var items = focusables();
      var first = items[0];
      var last = items[items.length - 1];
      if (event.shiftKey && (document.activeElement === first || !box.contains(document.activeElement))) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (document.activeElement === last || !box.contains(document.activeElement))) {
        event.preventDefault();
        first.focus();
      }
    }
  });
})();
