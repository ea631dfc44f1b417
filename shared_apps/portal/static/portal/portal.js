// Outpost portal: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // Copy buttons: data-copy-target="#selector" copies that element's text.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP development servers have no clipboard API: fall back to a selection.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function setupCopy() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy-target"));
        if (!target) return;
        var label = button.textContent;
        copyText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
          button.classList.add("copied");
        }, function () {
          button.textContent = "Select and copy";
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        });
        setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 2000);
      });
    });
  }

  // Selects that submit their form when changed (organisation switcher, audit filter).
  function setupAutosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.value && select.form) select.form.submit();
      });
    });
  }

  // Forms that ask before doing something destructive.
  function setupConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // A button enabled only once the input matches (typing the slug to delete an organisation).
  function setupConfirmMatch() {
    document.querySelectorAll("input[data-confirm-match]").forEach(function (input) {
      var button = document.querySelector(input.getAttribute("data-confirm-button"));
      if (!button) return;
      function update() { button.disabled = input.value.trim() !== input.getAttribute("data-confirm-match"); }
      input.addEventListener("input", update);
      update();
    });
  }

  // The provisioning page polls the status endpoint every second and moves on when ready.
  function setupProvisioning() {
    var box = document.querySelector("[data-provisioning]");
    if (!box) return;
    var statusUrl = box.getAttribute("data-status-url");
    var label = box.querySelector("[data-provisioning-status]");
    var started = Date.now();
    function poll() {
      fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          if (data.ready) {
            if (label) label.textContent = "Ready. Opening your dashboard…";
            window.location.assign(data.next);
            return;
          }
          var seconds = Math.round((Date.now() - started) / 1000);
          if (label) label.textContent = "Status: " + data.status + " (" + seconds + " s)";
          setTimeout(poll, 1000);
        })
        .catch(function () {
          if (label) label.textContent = "Waiting for the server…";
          setTimeout(poll, 2000);
        });
    }
    setTimeout(poll, 1000);
  }

  ready(function () {
    setupCopy();
    setupAutosubmit();
    setupConfirm();
    setupConfirmMatch();
    setupProvisioning();
  });
})();
