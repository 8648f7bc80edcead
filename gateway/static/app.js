// @ts-check
// app.js — Confab's browser app: the list of features, in the order they mount and handle
// frames. Plain ES modules, no build step, no framework; the CSP allows no inline script.
//
// core/ holds what every feature shares: the REST client (api.js), the socket (socket.js), the
// session (session.js), the store views subscribe to (store.js), the frame registry (frames.js)
// and the view loader (views.js, features.js). Each folder under features/ adds itself: see
// features.js, and the README's "The browser app" section.

import { startFeatures, startWhenSignedIn } from './core/features.js';
import auth from './features/auth/index.js';
import rooms from './features/rooms/index.js';
import chat from './features/chat/index.js';
import files from './features/files/index.js';
import notifications from './features/notifications/index.js';
import search from './features/search/index.js';
import people from './features/people/index.js';
import dms from './features/dms/index.js';
import moderation from './features/moderation/index.js';
import stranger from './features/stranger/index.js';

await startFeatures([rooms, chat, files, search, notifications, people, dms, moderation, stranger, auth]);

// Features loaded only for the users they concern (`when: (me) => …`). The admin panel is a page
// of its own (/admin, admin/admin.js); `moderation` shows its link to admins.
startWhenSignedIn([]);
