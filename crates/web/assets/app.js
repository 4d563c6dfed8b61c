// ferroshop storefront: progressive enhancement only. Every flow works
// without this script; it only
//  - disables a form's submit button once it was submitted, so a
//    double click sends one request (the checkout's idempotency key makes a
//    second one harmless anyway);
//  - asks before cancelling an order (forms with data-confirm).
"use strict";

document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) {
    return;
  }
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  if (form.dataset.submitted === "true") {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "true";
  var buttons = form.querySelectorAll("button[type=submit]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].setAttribute("aria-disabled", "true");
    buttons[i].classList.add("is-busy");
  }
});

// A page restored from the back/forward cache gets its buttons back.
window.addEventListener("pageshow", function () {
  var forms = document.querySelectorAll("form[data-submitted]");
  for (var i = 0; i < forms.length; i++) {
    delete forms[i].dataset.submitted;
    var buttons = forms[i].querySelectorAll("button[type=submit]");
    for (var j = 0; j < buttons.length; j++) {
      buttons[j].removeAttribute("aria-disabled");
      buttons[j].classList.remove("is-busy");
    }
  }
});
