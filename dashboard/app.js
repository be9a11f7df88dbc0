// The cohortcast dashboard: Preact with htm (no build step), over the management API.
// Each page is a module under pages/; this shell signs in, routes by the URL's hash and lays out.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { session, whenUnauthorized } from './lib/api.js';
import { html } from './lib/html.js';
import { useRoute } from './lib/router.js';
import { Alerts } from './pages/alerts.js';
import { Cohorts } from './pages/cohorts.js';
import { Connections } from './pages/connections.js';
import { Deliveries } from './pages/deliveries.js';
import { Events } from './pages/events.js';
import { Messages } from './pages/messages.js';
import { Overview } from './pages/overview.js';
import { Profiles } from './pages/profiles.js';
import { Reports } from './pages/reports.js';
import { SignIn } from './pages/sign-in.js';
import { Subscriptions } from './pages/subscriptions.js';
import { Syncs } from './pages/syncs.js';

/** The pages in the menu's order: route → [menu label, component]. A component gets the route's parts and query. */
const PAGES = {
  overview: ['Overview', Overview],
  connections: ['Connections', Connections],
  deliveries: ['Deliveries', Deliveries],
  cohorts: ['Cohorts', Cohorts],
  syncs: ['Cohort syncs', Syncs],
  messages: ['Messages', Messages],
  subscriptions: ['Subscriptions', Subscriptions],
  reports: ['Reports', Reports],
  alerts: ['Alerts', Alerts],
  events: ['Events', Events],
  profiles: ['Profiles', Profiles],
};

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(session.secret()));
  const [reason, setReason] = useState();
  const route = useRoute();
  const signOut = (why) => {
    session.signOut();
    setReason(why);
    setSignedIn(false);
  };
  const page = route.page in PAGES ? route.page : 'overview';
  const [label, Page] = PAGES[page];
  useEffect(() => whenUnauthorized(signOut), []);
  useEffect(() => {
    document.title = signedIn ? `${label} · cohortcast` : 'Sign in · cohortcast';
  }, [label, signedIn]);
  if (!signedIn) return html`<${SignIn} reason=${reason} onSignedIn=${() => setSignedIn(true)} />`;
  return html`<a class="skip" href="#main" onClick=${(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>Skip to content</a>
    <header>
      <strong>cohortcast</strong>
      <nav aria-label="Pages">${Object.entries(PAGES).map(([key, [text]]) => html`<a href=${`#/${key}`} aria-current=${key === page ? 'page' : undefined}>${text}</a>`)}</nav>
      <button type="button" onClick=${() => signOut()}>Sign out</button>
    </header>
    <main id="main" tabindex="-1"><${Page} key=${page} parts=${route.parts} query=${route.query} /></main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading…" placeholder shown before this module ran
render(html`<${App} />`, root);
