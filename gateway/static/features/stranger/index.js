// @ts-check
// stranger — "Talk to a stranger": the dialog where one picks interests (chips, normalised by
// the server) and waits, with how many people wait; then the stranger chat, which is a room of
// kind `stranger` opened in the chat view like any room (messages, typing, files, voice notes),
// where both people are "Stranger" (`matched.you` says which alias is one's own); and its bar:
// the interests both share, "Next" (leave and wait for someone else), "Report" (to the
// moderators; leaves the chat), "Block" (never paired with this stranger again; leaves the chat)
// and "Leave".
//
// The server keeps one's place in the queue (for a short grace after a socket drops) and one's
// chat. After a reconnect, or a reload while this tab was waiting or chatting (a mark in
// localStorage), this client asks where it was (`stranger_resume`) and shows what it is told; a
// client that was waiting sends `match` again instead (it keeps its place; past the grace it
// enters anew), so nobody waits for nothing.

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
  /** Connected anew and not acted since: a `waiting` the server sends by itself is adopted. */
  resumed: false,
};

/** Set while this browser waits or chats with a stranger, so that a reload asks where it was. */
const ACTIVE = 'confab.stranger.active';

/** @param {boolean} on */
function remember(on) {
  try { if (on) localStorage.setItem(ACTIVE, '1'); else localStorage.removeItem(ACTIVE); } catch { /* no storage */ }
}

/** Whether a page before this one left the mark. */
function remembered() {
  try { return localStorage.getItem(ACTIVE) === '1'; } catch { return false; }
}

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
  state.resumed = false;
  state.fewer = /** @type {HTMLInputElement} */ ($('stranger-fewer')).checked;
  if (!socket.send({ type, interests: state.interests, fewer: state.fewer })) {
    showText('stranger-error', 'Not connected; trying again…');
  }
  state.phase = 'waiting';
  remember(true);
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
  remember(true);
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
      state.resumed = false;
      if (state.phase === 'waiting') socket.send({ type: 'unmatch' });
      state.phase = state.room != null ? 'chat' : 'idle';
      if (state.phase === 'idle') remember(false);
      dialog().close();
    });
    $('stranger-next').addEventListener('click', () => {
      dropRoom();
      openDialog();
      enter('next');
    });
    $('stranger-leave').addEventListener('click', () => {
      state.resumed = false;
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
    $('stranger-block').addEventListener('click', async () => {
      const yes = await confirmAction({
        title: 'Block this stranger?',
        text: 'You will never be paired with them again (neither of you learns who the other is), and you leave the chat.',
        action: 'Block',
      });
      if (yes) {
        state.resumed = false;
        socket.send({ type: 'stranger_block' });
      }
    });
    onFrame('waiting', (f) => {
      // After a reconnect or a reload, the server says this user still waits.
      if (state.phase === 'idle' && state.resumed && state.room == null) {
        state.phase = 'waiting';
        state.interests = f.interests || [];
        openDialog();
      }
      if (state.phase !== 'waiting') return;
      showText('stranger-waiting', `Looking for a stranger… ${f.waiting} ${f.waiting === 1 ? 'person is' : 'people are'} waiting.`);
    });
    onFrame('matched', matched);
    onFrame('unmatched', () => {
      if (state.room != null) toast('You left the stranger chat.');
      remember(false);
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
    // After a reconnect or a reload: a client that was waiting enters again (keeping its place;
    // past the grace it enters anew); one that was in a chat, or a page that finds the mark of
    // an earlier one, asks where it was (`waiting`, `matched` or `unmatched` follows).
    onFrame('hello', () => {
      state.resumed = true;
      if (state.phase === 'waiting') socket.send({ type: 'match', interests: state.interests, fewer: state.fewer });
      else if (state.phase === 'chat' || remembered()) socket.send({ type: 'stranger_resume' });
    });
    store.subscribe(['current', 'rooms'], renderBar);
  },
};
