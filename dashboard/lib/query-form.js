// A search form whose values live in the page's URL (#/page?key=value): shareable, and kept on reload.
import { useState } from 'preact/hooks';
import { navigate } from './router.js';

/** The form's values (starting from the URL's query), a setter per key, and submit/clear that move the URL. */
export function useQueryForm(page, query, keys) {
  const initial = Object.fromEntries(keys.map((k) => [k, query[k] ?? '']));
  const [values, setValues] = useState(initial);
  const set = (key) => (value) => setValues((v) => ({ ...v, [key]: value }));
  const submit = (e) => {
    e.preventDefault();
    navigate(page, [], values);
  };
  const clear = () => {
    setValues(Object.fromEntries(keys.map((k) => [k, ''])));
    navigate(page, [], {});
  };
  return { values, set, submit, clear };
}

/** The API's `property.NAME=VALUE` filter from a name and a value field (nothing when the name is empty). */
export const propertyFilter = (name, value) => (name ? { [`property.${name}`]: value } : {});
