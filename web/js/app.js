// Vigil's web UI: the page's routes, the login, the views.
import { ApiError, csrfToken, find, forgetSession, login, logout, whoami } from './api.js';
import { clear, el } from './dom.js';
import { views } from './views.js';
import './audit.js';
import './sessions.js';
import './player.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const logoutButton = document.getElementById('logout');
let me = null;


function routeOf(path) {
  const parts = path.replace(/^\/web\/?/, '').split('/').filter(Boolean);
  if (parts.length === 0 || parts[0] === 'index.html') return { name: 'audit', args: [] };
  return { name: parts[0], args: parts.slice(1).map(decodeURIComponent) };
}

function go(path) {
  history.pushState({}, '', path);
  render();
}

function showLogin(secondFactor, message) {
  nav.hidden = true;
  logoutButton.hidden = true;
  who.textContent = '';
  clear(main);
  const error = el('p', { class: 'error', role: 'alert' }, message || '');
  const user = el('input', { name: 'user', autocomplete: 'username', required: true });
  const password = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const totp = el('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}' });
  const form = el('form', { class: 'panel login', 'aria-label': 'Log in' },
    el('h1', {}, 'Log in'),
    el('label', {}, 'User', user),
    el('label', {}, 'Password', password),
    secondFactor === 'otp' ? el('label', {}, 'Second-factor code', totp) : null,
    error,
    el('button', { class: 'primary', type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      await login(user.value, password.value, totp.value);
      await render();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  main.append(form);
  user.focus();
}

async function showLoginPage(message) {
  let sf = 'off';
  try { sf = (await find()).auth.second_factor; } catch (_) { /* shown as off */ }
  showLogin(sf, message);
}

async function render() {
  // No CSRF token kept: not logged in here; no call that would be refused.
  if (!csrfToken()) { await showLoginPage(); return; }
  try {
    me = await whoami();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      forgetSession();
      await showLoginPage('Your session ended; log in again.');
      return;
    }
    clear(main);
    main.append(el('p', { class: 'error', role: 'alert' }, e.message));
    return;
  }
  nav.hidden = false;
  logoutButton.hidden = false;
  who.textContent = `${me.user} (${me.roles.join(', ')})`;
  const route = routeOf(location.pathname);
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.route === route.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  const view = views[route.name];
  if (!view) {
    main.append(el('p', { class: 'error' }, 'No such page: ', location.pathname));
    return;
  }
  try {
    await view(main, route.args, me);
  } catch (e) {
    main.append(el('p', { class: 'error', role: 'alert' }, e.message));
  }
}

logoutButton.addEventListener('click', async () => {
  await logout().catch(() => {});
  me = null;
  go('/web/index.html');
});
window.addEventListener('popstate', render);
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a');
  if (!a || !a.getAttribute('href') || !a.getAttribute('href').startsWith('/web/') || a.target || a.hasAttribute('download')) return;
  if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  go(a.getAttribute('href'));
});

render();
