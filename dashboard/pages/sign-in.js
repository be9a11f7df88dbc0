import { useState } from 'preact/hooks';
import { api, session } from '../lib/api.js';
import { html } from '../lib/html.js';

/** Sign-in with the project secret; checked against the API before it is kept. */
export function SignIn({ onSignedIn, reason }) {
  const [secret, setSecret] = useState('');
  const [error, setError] = useState(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api('/connections', { query: { limit: 1 }, secret: secret.trim() });
      session.signIn(secret.trim());
      onSignedIn();
    } catch (err) {
      setError(err.status === 401 ? `That secret was refused: ${err.message}` : err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>Sign in to cohortcast</h1>
    <p>Use your project's secret (shown once when the project was made, e.g. by <code>cohortcast project create</code>). It stays in this browser tab only.</p>
    <form onSubmit=${submit}>
      <label for="secret">Project secret</label>
      <input id="secret" type="password" autocomplete="off" required value=${secret} onInput=${(e) => setSecret(e.currentTarget.value)} />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <p><button class="primary" type="submit" disabled=${busy}>Sign in</button></p>
    </form>
  </main>`;
}
