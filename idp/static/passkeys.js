// Passkey ceremonies for forms marked data-passkey="create" (enrol) or "get" (sign in). On
// submit: POST the form's CSRF token to data-options-url, run navigator.credentials with the
// options, put the result (JSON) in the form's "credential" field and submit the form. A file,
// not an inline script, so the Content-Security-Policy needs no 'unsafe-inline'.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) { return; }

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    json.challenge = toBytes(json.challenge);
    json.user.id = toBytes(json.user.id);
    json.excludeCredentials = descriptors(json.excludeCredentials);
    return { publicKey: json };
  }

  function requestOptions(json) {
    json.challenge = toBytes(json.challenge);
    json.allowCredentials = descriptors(json.allowCredentials);
    return { publicKey: json };
  }

  function credentialJson(credential) {
    var response = credential.response;
    var body = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      body.response.attestationObject = toText(response.attestationObject);
      body.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      body.response.authenticatorData = toText(response.authenticatorData);
      body.response.signature = toText(response.signature);
      if (response.userHandle) { body.response.userHandle = toText(response.userHandle); }
    }
    return JSON.stringify(body);
  }

  function fetchOptions(form) {
    var body = new URLSearchParams();
    body.set("csrf_token", form.elements.csrf_token.value);
    return fetch(form.dataset.optionsUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (response.status === 403 && json.location) {
          window.location.assign(json.location);
          throw new Error(json.message || "Please sign in again.");
        }
        if (!response.ok) { throw new Error(json.message || "The server refused to start."); }
        return json;
      });
    });
  }

  function run(form) {
    var status = form.querySelector("[data-passkey-status]");
    var creating = form.dataset.passkey === "create";
    var button = form.querySelector("button[type=submit]");
    function say(text) { if (status) { status.textContent = text; } }
    button.disabled = true;
    say("Follow your browser's prompt…");
    fetchOptions(form)
      .then(function (json) {
        return creating
          ? navigator.credentials.create(creationOptions(json))
          : navigator.credentials.get(requestOptions(json));
      })
      .then(function (credential) {
        if (!credential) { throw new Error("No passkey was chosen."); }
        form.elements.credential.value = credentialJson(credential);
        say("Checking…");
        form.submit();
      })
      .catch(function (error) {
        button.disabled = false;
        say(error && error.name === "NotAllowedError"
          ? "Cancelled, or no passkey for this site on this device."
          : (error && error.message) || "That did not work.");
      });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      run(form);
    });
  });
})();
