// Public pages: welcome, topic pages, profile, not found.

import { h } from '../dom.js';
import { session } from '../session.js';

function lockedCard(titleKey, textKey, href, testid) {
  const member = Boolean(session.user);
  return h('div', { class: 'col' },
    h('div', { class: `card h-100 feature-card ${member ? '' : 'feature-locked'}`, testid, dataset: { locked: member ? 'false' : 'true' } },
      h('div', { class: 'card-body' },
        h('h2', { class: 'h5 card-title' },
          member ? null : h('span', { class: 'lock-icon', 'aria-hidden': 'true' }),
          h('span', { i18n: titleKey })),
        h('p', { class: 'card-text text-body-secondary', i18n: textKey }),
        member
          ? h('a', { class: 'btn btn-primary', href, i18n: 'welcome.open' })
          : h('a', { class: 'btn btn-outline-secondary', href, i18n: 'welcome.lockedAction' }),
        member ? null : h('p', { class: 'small text-body-secondary mt-2 mb-0', i18n: 'welcome.lockedNote' }))));
}

function feature(titleKey, textKey, icon) {
  return h('div', { class: 'col' },
    h('div', { class: 'feature' },
      h('div', { class: `feature-icon feature-icon-${icon}`, 'aria-hidden': 'true' }),
      h('h2', { class: 'h5', i18n: titleKey }),
      h('p', { class: 'text-body-secondary', i18n: textKey })));
}

export function welcomeView() {
  const user = session.user;
  const actions = user
    ? [h('a', { class: 'btn btn-light btn-lg', href: '/lobby', testid: 'cta-lobby', i18n: 'welcome.ctaLobby' })]
    : [
      h('a', { class: 'btn btn-light btn-lg', href: '/register', testid: 'cta-register', i18n: 'welcome.ctaRegister' }),
      h('a', { class: 'btn btn-outline-light btn-lg', href: '/login', testid: 'cta-login', i18n: 'welcome.ctaLogin' }),
    ];
  const hero = h('section', { class: 'hero text-white' },
    h('div', { class: 'container py-5' },
      h('h1', { class: 'display-5 fw-bold', i18n: user ? ['welcome.titleMember', { username: user.username }] : 'welcome.title' }),
      h('p', { class: 'lead col-lg-8', i18n: 'welcome.lead' }),
      h('div', { class: 'd-flex flex-wrap gap-2' }, actions)));
  const features = h('section', { class: 'container py-5', 'aria-labelledby': 'features-title' },
    h('h2', { id: 'features-title', class: 'visually-hidden', i18n: 'welcome.featuresTitle' }),
    h('div', { class: 'row row-cols-1 row-cols-md-3 g-4' },
      feature('welcome.f1.title', 'welcome.f1.text', 'code'),
      feature('welcome.f2.title', 'welcome.f2.text', 'live'),
      feature('welcome.f3.title', 'welcome.f3.text', 'private')),
    h('h2', { class: 'h4 mt-5 mb-3', i18n: 'welcome.membersTitle' }),
    h('div', { class: 'row row-cols-1 row-cols-md-2 g-4' },
      lockedCard('welcome.lobby.title', 'welcome.lobby.text', '/lobby', 'entry-lobby'),
      lockedCard('welcome.profile.title', 'welcome.profile.text', '/profile', 'entry-profile')));
  return { node: h('div', { testid: 'welcome' }, hero, features), title: 'welcome.docTitle' };
}

function topic(prefix, paragraphs, extra = null) {
  return () => {
    const body = [];
    for (const p of paragraphs) {
      if (p.startsWith('h:')) body.push(h('h2', { class: 'h4 mt-4', i18n: `${prefix}.${p.slice(2)}` }));
      else body.push(h('p', { i18n: `${prefix}.${p}` }));
    }
    const node = h('article', { class: 'container py-4 py-md-5 topic', testid: `topic-${prefix}` },
      h('div', { class: 'col-lg-8' },
        h('h1', { class: 'h2 mb-3', i18n: `${prefix}.title` }),
        h('p', { class: 'lead', i18n: `${prefix}.lead` }),
        ...body,
        extra ? extra() : null));
    return { node, title: `${prefix}.title` };
  };
}

export const aboutView = topic('about', ['p1', 'p2', 'p3']);

export const howView = topic('how', ['h:codesTitle', 'codes', 'h:lifeTitle', 'life1', 'life2', 'h:historyTitle', 'history', 'h:tabsTitle', 'tabs'],
  () => h('p', { class: 'mt-4' }, h('a', { class: 'btn btn-primary', href: '/lobby', i18n: 'how.cta' })));

export const privacyView = topic('privacy', ['h:accountTitle', 'account', 'h:messagesTitle', 'messages', 'h:cookiesTitle', 'cookies', 'h:thirdTitle', 'third']);

export function profileView() {
  const u = session.user;
  const row = (labelKey, value, testid) => [
    h('dt', { class: 'col-sm-4', i18n: labelKey }),
    h('dd', { class: 'col-sm-8 text-break', testid, text: value }),
  ];
  const node = h('div', { class: 'container py-4 py-md-5', testid: 'profile' },
    h('div', { class: 'col-lg-7' },
      h('h1', { class: 'h2 mb-3', i18n: 'profile.title' }),
      h('div', { class: 'card card-body shadow-sm' },
        h('dl', { class: 'row mb-0' },
          ...row('profile.username', u.username, 'profile-username'),
          ...row('profile.email', u.email, 'profile-email'))),
      h('p', { class: 'mt-3 text-body-secondary', i18n: 'profile.note' }),
      h('a', { class: 'btn btn-primary', href: '/lobby', i18n: 'profile.toLobby' })));
  return { node, title: 'profile.title' };
}

function readablePath(path) {
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

export function notFoundView(ctx) {
  const node = h('div', { class: 'container py-5', testid: 'not-found' },
    h('h1', { class: 'h2', i18n: 'notFound.title' }),
    h('p', { i18n: 'notFound.text' }),
    h('p', { class: 'text-body-secondary text-break' }, h('code', { text: readablePath(ctx.path) })),
    h('a', { class: 'btn btn-primary', href: '/', i18n: 'notFound.home' }));
  return { node, title: 'notFound.title' };
}

export function failedView() {
  const node = h('div', { class: 'container py-5', testid: 'view-failed' },
    h('h1', { class: 'h2', i18n: 'errors.viewFailedTitle' }),
    h('p', { i18n: 'errors.viewFailed' }),
    h('a', { class: 'btn btn-primary', href: '/', i18n: 'notFound.home' }));
  return { node, title: 'errors.viewFailedTitle' };
}
