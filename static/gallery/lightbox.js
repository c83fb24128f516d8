/* Style Gallery lightbox: open a grid image full size; ← / → move, Esc closes. No dependencies. */
(function () {
  "use strict";
  var box = document.getElementById("lightbox");
  if (!box) return;
  var image = box.querySelector("[data-lightbox-image]");
  var caption = box.querySelector("[data-lightbox-caption]");
  var count = box.querySelector("[data-lightbox-count]");
  var download = box.querySelector("[data-lightbox-download]");
  var closeButton = box.querySelector("[data-lightbox-close]");
  var links = [];
  var index = 0;
  var opener = null;

  function collect() {
    return Array.prototype.slice.call(document.querySelectorAll(".grid-link[href]"));
  }

  function show(position) {
    links = collect();
    if (!links.length) return;
    index = (position + links.length) % links.length;
    var link = links[index];
    image.src = link.href;
    image.alt = link.getAttribute("data-caption") || "";
    caption.textContent = link.getAttribute("data-caption") || "";
    count.textContent = index + 1 + " / " + links.length;
    download.href = link.getAttribute("data-download") || link.href;
  }

  function open(link) {
    opener = link;
    box.hidden = false;
    document.body.classList.add("lightbox-open");
    show(collect().indexOf(link));
    closeButton.focus();
  }

  function close() {
    box.hidden = true;
    image.removeAttribute("src");
    document.body.classList.remove("lightbox-open");
    if (opener) opener.focus();
  }

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
  box.querySelector("[data-lightbox-prev]").addEventListener("click", function () { show(index - 1); });
  box.querySelector("[data-lightbox-next]").addEventListener("click", function () { show(index + 1); });
  document.addEventListener("keydown", function (event) {
    if (box.hidden) return;
    if (event.key === "Escape") { event.preventDefault(); close(); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); show(index - 1); }
    else if (event.key === "ArrowRight") { event.preventDefault(); show(index + 1); }
  });
})();
