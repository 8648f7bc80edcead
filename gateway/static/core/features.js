// @ts-check
// features.js — how a feature joins the app. A feature is a folder under `features/` whose
// `index.js` default-exports a `Feature`: its markup (`view.html`, mounted into slots), and
// `start()`, which registers its frame handlers (`onFrame`), subscribes its views to the store
// and wires their events. app.js lists the features; one with `when` is loaded (dynamic import)
// only once a user it applies to signs in, e.g. the admin screens only for admins.

import { loadViews, mountViews } from './views.js';
import { store } from './store.js';

/**
 * @typedef {object} Feature
 * @property {string} name
 * @property {URL} [views]      its view.html: `new URL('./view.html', import.meta.url)`
 * @property {() => void} start  registers frame handlers, subscribes views, wires events
 */

/**
 * A feature loaded only for some users.
 * @typedef {object} LazyFeature
 * @property {(me: import('./types.js').User) => boolean} when
 * @property {() => Promise<{default: Feature}>} load   `() => import('../features/x/index.js')`
 */

/**
 * Mounts every feature's views (fetched together), then starts each, in order.
 * @param {Feature[]} features
 */
export async function startFeatures(features) {
  const views = await Promise.all(features.map((f) => (f.views ? loadViews(f.views) : [])));
  views.forEach(mountViews);
  for (const f of features) f.start();
}

/**
 * Starts each lazy feature the first time a user it applies to is signed in.
 * @param {LazyFeature[]} lazy
 */
export function startWhenSignedIn(lazy) {
  const started = new Set();
  store.subscribe('me', ({ me }) => {
    if (!me) return;
    for (const l of lazy) {
      if (started.has(l) || !l.when(me)) continue;
      started.add(l);
      l.load().then((m) => startFeatures([m.default])).catch((e) => console.warn('feature not loaded', e));
    }
  });
}
