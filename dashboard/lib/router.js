// Hash routes: #/page/part/part?key=value. Nothing to configure on the server, and reloads keep the page.
import { useEffect, useState } from 'preact/hooks';

export function parseHash(hash = location.hash) {
  const [path, search = ''] = hash.replace(/^#\/?/, '').split('?');
  const [page = '', ...parts] = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { page, parts, query: Object.fromEntries(new URLSearchParams(search)) };
}

/** The href of a route; empty query values are left out. */
export function href(page, parts = [], query = {}) {
  const path = [page, ...parts].map((p) => encodeURIComponent(String(p))).join('/');
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const search = params.toString();
  return `#/${path}${search ? `?${search}` : ''}`;
}

export const navigate = (page, parts, query) => {
  location.hash = href(page, parts, query);
};

export function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const onHash = () => setRoute(parseHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  return route;
}
