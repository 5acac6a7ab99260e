// Loads the front-channel logout iframes (if any), then takes the page's next step: submits
// the form marked data-autosubmit or follows the link marked data-autoredirect. A file, not an
// inline script, so the Content-Security-Policy needs no 'unsafe-inline'.
(function () {
  "use strict";
  var frames = document.querySelectorAll("iframe.frontchannel");
  var left = frames.length;
  var finished = false;
  function done() {
    if (finished) { return; }
    finished = true;
    var progress = document.getElementById("progress");
    if (progress) { progress.textContent = "Signed out of every app."; }
    var form = document.querySelector("form[data-autosubmit]");
    if (form) { form.submit(); return; }
    var link = document.querySelector("a[data-autoredirect]");
    if (link) { window.location.replace(link.href); }
  }
  if (!left) { done(); return; }
  frames.forEach(function (frame) {
    frame.addEventListener("load", function () { left -= 1; if (!left) { done(); } });
  });
  setTimeout(done, 4000);
})();
