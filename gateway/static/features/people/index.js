// @ts-check
// people — other people and oneself: the profile card any name opens (profile.js), one's own
// profile and the people one blocked (settings.js, from the name in the sidebar's header), and
// keeping the list of blocked users (core/people.js) loaded: at sign-in and after each reconnect.

import { $ } from '../../core/dom.js';
import { onFrame } from '../../core/frames.js';
import { loadBlocks, provideProfile, openProfile } from '../../core/people.js';
import { store } from '../../core/store.js';
import { showProfile, wireProfile } from './profile.js';
import { wireSettings } from './settings.js';

function reloadBlocks() {
  loadBlocks().catch(() => { /* kept as it was: the next reconnect tries again */ });
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'people',
  views: new URL('./view.html', import.meta.url),
  start() {
    provideProfile(showProfile);
    wireProfile();
    wireSettings();
    $('me').addEventListener('click', () => { const me = store.state.me; if (me) openProfile(me, $('me')); });
    onFrame('hello', reloadBlocks);
    store.subscribe('me', ({ me }) => {
      if (me) return;
      store.update(['blocks', 'people'], ({ blocks, people }) => { blocks.clear(); people.clear(); });
      const dlg = /** @type {HTMLDialogElement} */ ($('profile-dialog'));
      if (dlg.open) dlg.close();
    });
  },
};
