// Loading, paging and acting on the API from a component.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';

/**
 * Runs `load()` now, whenever `deps` change, on `reload()`, and every `every` ms if given (live pages).
 * Keeps showing the last data while a refresh runs; an error replaces it with the API's message.
 */
export function useLoad(load, deps = [], { every } = {}) {
  const [state, setState] = useState({ loading: true });
  const latest = useRef(0);
  const reload = useCallback(() => {
    const call = ++latest.current;
    return load().then(
      (data) => call === latest.current && setState({ data }),
      (err) => call === latest.current && setState({ error: err.message, status: err.status }),
    );
  }, deps);
  useEffect(() => {
    reload();
    if (!every) return undefined;
    const timer = setInterval(() => document.visibilityState === 'visible' && reload(), every);
    return () => clearInterval(timer);
  }, [reload, every]);
  return [state, reload];
}

/**
 * A list read page by page with the API's cursors: `next()` follows next_cursor, `previous()` goes
 * back through the cursors already seen. `query` changes start again at the first page.
 */
export function usePaged(path, query = {}, { limit = 50, every } = {}) {
  const key = JSON.stringify([path, query, limit]);
  // The cursors seen belong to one list: another path or query starts again at its first page.
  const [seen, setSeen] = useState({ key, cursors: [undefined] });
  const cursors = seen.key === key ? seen.cursors : [undefined];
  const cursor = cursors.at(-1);
  const [state, reload] = useLoad(() => api(path, { query: { ...query, limit, cursor } }), [key, cursor], { every });
  return {
    ...state,
    reload,
    page: cursors.length,
    hasNext: Boolean(state.data?.next_cursor),
    next: () => state.data?.next_cursor && setSeen({ key, cursors: [...cursors, state.data.next_cursor] }),
    previous: () => setSeen({ key, cursors: cursors.length > 1 ? cursors.slice(0, -1) : cursors }),
  };
}

/** An action a person starts (a button, a form): busy while it runs, its result or the API's refusal after. */
export function useAction(run) {
  const [state, setState] = useState({});
  const start = async (...args) => {
    setState({ busy: true });
    try {
      const result = await run(...args);
      setState({ result });
      return result;
    } catch (err) {
      setState({ error: err.message, status: err.status, code: err.code });
      return undefined;
    }
  };
  return [state, start, () => setState({})];
}
