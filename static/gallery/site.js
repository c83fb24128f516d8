/* Style Gallery, every page: what the server's answer asks to be read first gets the focus (a
   form's error summary, the sweep form's count), and an error summary's links take the focus to
   their field. Without this script both still work: the summary is at the top, its links jump. */
(function () {
  "use strict";

  // The first thing marked data-focus-on-load (the error summary comes before anything else).
  var first = document.querySelector("[data-focus-on-load]");
  if (first) first.focus();

  // A link of the error summary: the field gets the focus, scrolled so that its label shows too.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-error-link]");
    var field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    (field.closest(".field") || field).scrollIntoView({ block: "start" });
    field.focus({ preventScroll: true });
  });
})();
