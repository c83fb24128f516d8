/* Style Gallery, every page: what the server's answer asks to be read first gets the focus (a
   form's error summary, the sweep form's count), an error summary's links take the focus to their
   field, the launch form shows only the fields that apply, and the theme switch changes the theme in
   place, keeping what was typed. Without this script every piece still works: the summary is at the
   top, its links jump, every field shows, the switch posts. */
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

  // The launch form's fields that matter only with another field's value (RunForm.SHOWN_WHEN, e.g. the
  // AdaIN strength with the AdaIN start): shown with it, or while they show an error.
  var launch = document.getElementById("run-form");
  var dependents = launch ? launch.querySelectorAll("[data-shown-when]") : [];
  function showDependents() {
    dependents.forEach(function (input) {
      var rule = input.getAttribute("data-shown-when").split("=");
      var control = launch.elements[rule[0]];
      var wrapper = input.closest(".field");
      if (control && wrapper) wrapper.hidden = control.value !== rule[1] && !wrapper.classList.contains("has-error");
    });
  }
  if (dependents.length) {
    launch.addEventListener("change", showDependents);
    showDependents();
  }

  // The theme switch: the cookie is set by the same POST as without script, then the theme changes on
  // this page (base.html's data-theme; style.css shows the button that offers the other theme).
  var themeForm = document.querySelector(".theme-form");
  if (!themeForm || !window.fetch) return;
  themeForm.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button || !button.name) return;
    event.preventDefault();
    var data = new FormData(themeForm);
    data.set(button.name, button.value);
    // The answer is a redirect to this page: its cookie is all that is wanted, not the page again.
    fetch(themeForm.action, { method: "POST", body: data, credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type !== "opaqueredirect" && !response.ok) throw new Error("theme: " + response.status);
        var hadFocus = document.activeElement === button;
        document.documentElement.setAttribute("data-theme", button.value);
        var other = themeForm.querySelector(button.value === "dark" ? ".theme-to-light" : ".theme-to-dark");
        if (hadFocus && other) other.focus();
      })
      .catch(function () {
        // The plain post and redirect, as without script.
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = button.name;
        input.value = button.value;
        themeForm.appendChild(input);
        themeForm.submit();
      });
  });
})();
