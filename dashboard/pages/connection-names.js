// Connections by name for the deliveries pages: their first 1000 in one call (people make them by hand);
// one past those, or deleted, shows its id.
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useLoad } from '../lib/hooks.js';
import { href } from '../lib/router.js';

export function useConnections() {
  const [state] = useLoad(() => api('/connections', { query: { limit: 1000 } }), []);
  return state.data?.results ?? [];
}

export const connectionLink = (connections, id) => html`<a href=${href('connections', [id])}>${connections.find((c) => c.id === id)?.name ?? `#${id}`}</a>`;
