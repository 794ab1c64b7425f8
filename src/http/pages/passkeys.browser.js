// The passkey ceremonies of the hosted pages, served same-origin as
// /assets/passkeys.js after SimpleWebAuthn's browser bundle (a plain script:
// the pages' Content-Security-Policy has no 'unsafe-inline').
//
// Progressive enhancement only: every passkey control is `hidden` in the HTML
// and shown here when the browser supports WebAuthn. Without this script the
// pages sign in with a password as before. The script only fetches options
// (JSON) and runs the ceremony; the result is posted with the page's own form,
// so the server checks it, sets the cookies and picks the next page exactly as
// for any other form.
'use strict';
(() => {
  const lib = window.SimpleWebAuthnBrowser;
  if (!lib || !lib.browserSupportsWebAuthn()) return;
  const { startAuthentication, startRegistration, browserSupportsWebAuthnAutofill } = lib;

  /** Shows a message in the box's alert (role=alert: screen readers announce it). */
  const say = (box, text) => {
    const alert = box.querySelector('[data-passkey-alert]');
    alert.hidden = false;
    alert.textContent = text;
  };

  /** A message for what went wrong, from the box's data-msg-* attributes (the page's language). */
  const message = (box, error) => {
    const msg = box.dataset;
    if (error.code === 'invalid_credentials') return msg.msgPassword;
    if (error.code === 'rate_limited') return msg.msgRate;
    if (error.code === 'too_many_passkeys') return msg.msgTooMany || msg.msgFailed;
    if (error.name === 'InvalidStateError') return msg.msgExists || msg.msgFailed;
    if (error.name === 'NotAllowedError' || error.name === 'AbortError') return msg.msgCancelled;
    return msg.msgFailed;
  };

  /**
   * POSTs JSON to one of Signet's own routes. On a signed-in page (csrf given)
   * an access cookie that expired while the page was open is renewed with the
   * refresh cookie first, and the request sent once more.
   */
  const postJson = async (url, body, csrf) => {
    const headers = csrf ? { 'x-csrf-token': csrf } : {};
    const send = () =>
      fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    let response = await send();
    if (response.status === 401 && csrf) {
      const refreshed = await fetch('/auth/token/refresh', { method: 'POST', credentials: 'same-origin', headers });
      if (refreshed.ok) response = await send();
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error(data.code || 'request failed'), { code: data.code || 'failed' });
    return data;
  };

  /** Puts the ceremony's result into the box's form and sends it. */
  const submit = (box, result) => {
    const form = box.querySelector('form');
    form.elements.credential.value = JSON.stringify(result);
    form.submit();
  };

  // Sign-in page: the "Sign in with a passkey" button, and the identifier field's autofill (conditional UI).
  const signIn = document.querySelector('[data-passkey="signin"]');
  if (signIn) {
    signIn.hidden = false;
    signIn.querySelector('button').addEventListener('click', async () => {
      try {
        const optionsJSON = await postJson(signIn.dataset.options);
        // Starting this ceremony aborts the pending autofill one (its AbortError is ignored below).
        submit(signIn, await startAuthentication({ optionsJSON }));
      } catch (error) {
        say(signIn, message(signIn, error));
      }
    });
    // Not right after a refused passkey: an authenticator that answers on its own would loop.
    if (signIn.dataset.autofill === 'on') {
      browserSupportsWebAuthnAutofill()
        .then(async (supported) => {
          if (!supported) return;
          const optionsJSON = await postJson(signIn.dataset.options);
          submit(signIn, await startAuthentication({ optionsJSON, useBrowserAutofill: true }));
        })
        .catch((error) => {
          // Superseded by the button, dismissed, or nothing to offer: stay quiet.
          if (error.name !== 'AbortError' && error.name !== 'NotAllowedError') say(signIn, message(signIn, error));
        });
    }
  }

  // The server said a passkey is unknown here (removed): let the authenticator forget it (WebAuthn L3 signal API).
  const unknown = document.querySelector('[data-unknown-passkey]');
  if (unknown && window.PublicKeyCredential && typeof PublicKeyCredential.signalUnknownCredential === 'function') {
    PublicKeyCredential.signalUnknownCredential({ rpId: unknown.dataset.rpId, credentialId: unknown.dataset.unknownPasskey }).catch(() => undefined);
  }

  // Second step of a password sign-in: the options came with the page (they belong to this sign-in).
  const secondFactor = document.querySelector('[data-passkey="mfa"]');
  if (secondFactor) {
    secondFactor.hidden = false;
    secondFactor.querySelector('button').addEventListener('click', async () => {
      try {
        submit(secondFactor, await startAuthentication({ optionsJSON: JSON.parse(secondFactor.dataset.request) }));
      } catch (error) {
        say(secondFactor, message(secondFactor, error));
      }
    });
  }

  // Account page: add a passkey.
  const register = document.querySelector('[data-passkey="register"]');
  if (register) {
    register.hidden = false;
    const form = register.querySelector('form');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const password = form.elements.passkeyPassword;
      try {
        const body = password && password.value ? { password: password.value } : {};
        const optionsJSON = await postJson(register.dataset.options, body, form.elements.csrf.value);
        const result = await startRegistration({ optionsJSON });
        // The password did its work at the options step; it is not sent again.
        if (password) password.value = '';
        submit(register, result);
      } catch (error) {
        if (error.code === 'reauthentication_required') return window.location.assign(register.dataset.reauth);
        say(register, message(register, error));
      }
    });
  }
})();
