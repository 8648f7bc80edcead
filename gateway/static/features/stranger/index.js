// @ts-check
// stranger — "Talk to a stranger": the dialog where one picks interests (chips, normalised by
// the server) and waits, with how many people wait; then the stranger chat, which is a room of
// kind `stranger` opened in the chat view like any room (messages, typing, files, voice notes),
// where both people are "Stranger" (`matched.you` says which alias is one's own); and its bar:
// the interests both share, "Next" (leave and wait for someone else), "Report" (to the
// moderators; leaves the chat) and "Leave".
//
// The server keeps one's place in the queue and one's chat; after a reconnect this client sends
// `match` again (answered `waiting`, or `matched` with the chat it is in), so a dropped socket
// or a server that changed never leaves anyone waiting for nothing.

import { $, el, showText, humanError } from '../../core/dom.js';
import { store, roomFrom, selectRoom, currentRoom } from '../../core/store.js';
import { socket } from '../../core/session.js';
import { onFrame } from '../../core/frames.js';
import { confirmAction } from '../../core/confirm.js';
import { toast } from '../../core/toast.js';

/** Most interests one enters with (the server's limit). */
const MAX_INTERESTS = 10;

/** Where this client is: nowhere, waiting in the queue, or in chat `room`. */
const state = {
  /** @type {'idle' | 'waiting' | 'chat'} */
  phase: 'idle',
  /** @type {string[]} */
  interests: [],
  fewer: true,
  /** @type {number | null} */
  room: null,
  /** @type {string[]} */
  shared: [],
  gone: false,
};

const dialog = () => /** @type {HTMLDialogElement} */ ($('stranger-dialog'));
const input = () => /** @type {HTMLInputElement} */ ($('stranger-interest'));

function renderChips() {
  const box = $('stranger-chips');
  box.replaceChildren(...state.interests.map((t) => {
    const chip = el('button', 'chip', `${t} ✕`);
    /** @type {HTMLButtonElement} */ (chip).type = 'button';
    chip.setAttribute('aria-label', `Remove ${t}`);
    chip.addEventListener('click', () => { state.interests = state.interests.filter((x) => x !== t); renderChips(); });
    return chip;
  }));
}

/** Adds what is typed as a chip (lowercase, trimmed, no leading #, no repeats). */
function addInterest() {
  const t = input().value.trim().replace(/^#+/, '').toLowerCase().replace(/\s+/g, ' ');
  input().value = '';
  if (!t || state.interests.includes(t)) return;
  if (state.interests.length >= MAX_INTERESTS) { showText('stranger-error', `At most ${MAX_INTERESTS} interests.`); return; }
  state.interests.push(t);
  renderChips();
}

function renderDialog() {
  const waiting = state.phase === 'waiting';
  $('stranger-start').hidden = waiting;
  input().disabled = waiting;
  $('stranger-cancel').textContent = waiting ? 'Stop waiting' : 'Cancel';
  if (!waiting) $('stranger-waiting').hidden = true;
}

function openDialog() {
  showText('stranger-error', '');
  renderChips();
  renderDialog();
  if (!dialog().open) dialog().showModal();
}

/** Sends `match` (or `next`) with the chosen interests. @param {'match' | 'next'} type */
function enter(type) {
  state.fewer = /** @type {HTMLInputElement} */ ($('stranger-fewer')).checked;
  if (!socket.send({ type, interests: state.interests, fewer: state.fewer })) {
    showText('stranger-error', 'Not connected; trying again…');
  }
  state.phase = 'waiting';
  renderDialog();
}

function renderBar() {
  const r = currentRoom();
  const mine = !!r && r.kind === 'stranger' && r.id === state.room;
  $('stranger-bar').hidden = !mine;
  if (!mine) return;
  $('stranger-shared').textContent = state.shared.length
    ? `You both like: ${state.shared.join(', ')}` : 'You were paired on no shared interest.';
  $('stranger-gone').hidden = !state.gone;
}

/** Leaves the chat on screen (the server was told already). */
function dropRoom() {
  const id = state.room;
  state.room = null;
  state.gone = false;
  if (id == null) return;
  store.update(['rooms', 'current'], (s) => {
    s.rooms.delete(id);
    if (s.current === id) s.current = null;
  });
}

/** @param {import('../../core/types.js').Frame} f */
function matched(f) {
  if (state.room === f.room) return;
  dropRoom();
  state.phase = 'chat';
  state.room = f.room;
  state.shared = f.shared || [];
  state.gone = false;
  store.update('rooms', (s) => {
    s.rooms.set(f.room, roomFrom({ id: f.room, name: 'Stranger', kind: 'stranger', you: f.you, member: true, visibility: 'private' }));
  });
  selectRoom(f.room);
  if (dialog().open) dialog().close();
  renderBar();
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'stranger',
  views: new URL('./view.html', import.meta.url),
  start() {
    $('stranger-open').addEventListener('click', openDialog);
    input().addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ',') { e.preventDefault(); addInterest(); }
    });
    $('stranger-form').addEventListener('submit', (e) => {
      e.preventDefault();
      addInterest();
      enter('match');
    });
    $('stranger-cancel').addEventListener('click', () => {
      if (state.phase === 'waiting') socket.send({ type: 'unmatch' });
      state.phase = state.room != null ? 'chat' : 'idle';
      dialog().close();
    });
    $('stranger-next').addEventListener('click', () => {
      dropRoom();
      openDialog();
      enter('next');
    });
    $('stranger-leave').addEventListener('click', () => {
      socket.send({ type: 'unmatch' });
      state.phase = 'idle';
      dropRoom();
    });
    $('stranger-report').addEventListener('click', async () => {
      const yes = await confirmAction({
        title: 'Report this chat?',
        text: 'The conversation goes to the moderators, and you leave it.',
        action: 'Report',
      });
      if (yes) socket.send({ type: 'stranger_report', reason: 'reported from the stranger chat' });
    });
    onFrame('waiting', (f) => {
      if (state.phase !== 'waiting') return;
      showText('stranger-waiting', `Looking for a stranger… ${f.waiting} ${f.waiting === 1 ? 'person is' : 'people are'} waiting.`);
    });
    onFrame('matched', matched);
    onFrame('unmatched', () => {
      if (state.room != null) toast('You left the stranger chat.');
      state.phase = 'idle';
      dropRoom();
    });
    onFrame('system', (f) => {
      if (f.room === state.room && f.event?.op === 'member_left' && f.event?.user?.id !== currentRoom()?.you?.id) {
        state.gone = true;
        renderBar();
      }
    });
    onFrame('error', (f) => {
      if (!dialog().open || f.room != null || f.ref != null) return;
      showText('stranger-error', humanError(f.code, f.message));
      if (state.phase === 'waiting') { state.phase = 'idle'; renderDialog(); }
    });
    // After a reconnect: where was this client? The server answers `waiting` or `matched`.
    onFrame('hello', () => {
      if (state.phase !== 'idle') socket.send({ type: 'match', interests: state.interests, fewer: state.fewer });
    });
    store.subscribe(['current', 'rooms'], renderBar);
  },
};
