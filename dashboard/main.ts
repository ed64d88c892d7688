/**
 * The dashboard page: a hash router over four views (topics, groups, a
 * group, a topic) and the sign-in form shown when the hub wants a token.
 * Everything it shows comes through the web client and the hub's HTTP API.
 */
import { el, errorText, type View } from './dom.ts';
import { groupsView, groupView } from './groups-view.ts';
import { HubSession } from './hub-session.ts';
import { topicsView } from './topics-view.ts';
import { topicView } from './topic-view.ts';
import './style.css';

const AUTH_CODES = new Set(['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED']);

const session = new HubSession(location.origin);
const main = document.querySelector('main')!;
const nav = document.querySelector('nav')!;
let stopView: (() => void) | undefined;

function viewFor(hash: string): View {
  const [, kind, name] = /^#\/(\w+)(?:\/(.+))?$/.exec(hash) ?? [];
  if (kind === 'groups') return groupsView(session);
  if (kind === 'group' && name) return groupView(session, decodeURIComponent(name));
  if (kind === 'topic' && name) return topicView(session, decodeURIComponent(name));
  return topicsView(session);
}

function route(): void {
  stopView?.();
  main.replaceChildren();
  const onGroups = /^#\/groups?\b/.test(location.hash);
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', (a.getAttribute('href') === '#/groups') === onGroups);
  stopView = viewFor(location.hash)(main);
}

function signInForm(message: string): void {
  stopView?.();
  stopView = undefined;
  const input = el('textarea', { id: 'token', rows: '4', placeholder: 'eyJhbGciOi…', autocomplete: 'off' });
  const form = el('form', { id: 'login' }, el('h2', {}, 'Sign in'), el('p', { class: 'muted' }, message), input, el('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    session.signIn(input.value);
    // A fresh page: the WebSocket client is made once per page, with the token it starts with.
    location.reload();
  });
  main.replaceChildren(form);
}

async function boot(): Promise<void> {
  try {
    await session.admin.listTopics();
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (AUTH_CODES.has(code)) {
      const hadToken = session.token !== undefined;
      if (hadToken) session.signOut();
      signInForm(hadToken ? `The token was refused (${errorText(err)}); paste another.` : 'This hub has authentication on: paste a token (JWT) that may read its topics.');
      return;
    }
  }
  const signOut = document.querySelector<HTMLButtonElement>('#sign-out')!;
  signOut.hidden = session.token === undefined;
  signOut.addEventListener('click', () => {
    session.signOut();
    location.reload();
  });
  const state = document.querySelector('#conn-state')!;
  session.wsClient().on('state', (s) => (state.textContent = s));
  window.addEventListener('hashchange', route);
  route();
}

void boot();
