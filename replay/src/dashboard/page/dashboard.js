// The operations centre's dashboard. Every figure comes from the replay service's API
// (/api/v1/kpi, /api/v1/dashboard, /api/v1/integrity, the /api/v1/live event stream); this
// script only names codes in Vietnamese (or English) and draws. Text from the API is always
// inserted as text, never as HTML. Charts and the map are inline SVG drawn here: no library,
// no CDN, nothing fetched from outside.
'use strict';

const I18N = {
  vi: {
    skip: 'Bỏ qua, đến nội dung chính', title: 'Trung tâm điều hành thông minh',
    city: 'Thành phố Phan Thiết · Lienthong', period: 'Kỳ báo cáo', year: 'Năm',
    filtered: 'Đang lọc theo', clear: 'Bỏ lọc', updated: 'Cập nhật', kpis: 'Chỉ tiêu chính',
    map: 'Bản đồ phường, xã', per1000: 'Phản ánh trên 1.000 dân', overdueCount: 'Phản ánh quá hạn',
    trends: 'Xu hướng theo tháng', trendReports: 'Phản ánh tiếp nhận và đã xử lý',
    trendDocs: 'Tỷ lệ văn bản điện tử (%)', trendSignins: 'Lượt đăng nhập một lần',
    trendMeetings: 'Cuộc họp trực tuyến', overdue: 'Phản ánh quá hạn',
    oldest: 'Phản ánh chưa xử lý lâu nhất', byStatus: 'Phản ánh theo trạng thái',
    byCategory: 'Phản ánh theo lĩnh vực', byAgency: 'Tỷ lệ văn bản gửi điện tử theo cơ quan',
    byApp: 'Lượt đăng nhập theo ứng dụng', cityWide: 'Số liệu toàn thành phố (không lọc theo phường, xã).',
    live: 'Sự kiện mới nhất', connecting: 'Đang kết nối', connected: 'Trực tiếp', disconnected: 'Mất kết nối, đang thử lại',
    liveCount: 'Sự kiện nhận từ khi mở trang:', integrity: 'Toàn vẹn lịch sử dữ liệu',
    certificate: 'Chứng thư số', certExpiring: n => `Sắp hết hạn: còn ${n} ngày — cấp chứng thư mới`,
    certExpired: 'Đã hết hạn — các kết nối dùng nó bị từ chối', certBroken: 'Không đọc được hoặc chưa có hiệu lực',
    about: 'Dữ liệu và tài liệu', datasets: 'Bộ dữ liệu dùng chung', events: 'Danh mục sự kiện',
    metrics: 'Chỉ số vận hành', dataset: 'Bộ dữ liệu', langButton: 'EN', langName: 'English',
    cardDocRatio: 'Tỷ lệ văn bản điện tử (không tính văn bản mật)',
    subDocs: (a, b) => `${a} / ${b} văn bản gửi đi`,
    cardReceived: 'Phản ánh, kiến nghị đã tiếp nhận',
    subWards: (a, b) => `từ ${a} / ${b} phường, xã`,
    cardResolved: 'Phản ánh, kiến nghị đã xử lý', subShare: a => `${a} số đã tiếp nhận`,
    cardOnTime: 'Tỷ lệ phản ánh, kiến nghị xử lý đúng hạn',
    subMedian: a => `thời gian xử lý trung vị ${a} giờ`,
    cardOpen: 'Phản ánh đang xử lý', subOverdue: a => `${a} quá hạn`,
    cardUsers: 'Người dùng đăng nhập một lần (SSO)', subLogins: a => `${a} lượt đăng nhập`,
    cardActive: 'Người dùng hoạt động', subMonthly: (a, m) => `${a} trong ${m}`,
    cardDatasets: 'Bộ dữ liệu mở', subResources: a => `${a} tài nguyên`,
    cardMeetings: 'Cuộc họp trực tuyến', subParticipations: a => `${a} lượt tham dự`,
    cardWards: 'Phường, xã kết nối họp trực tuyến', subOfWards: a => `trên tổng số ${a} phường, xã`,
    reportsReceived: 'Tiếp nhận', reportsResolved: 'Đã xử lý', documentRatio: 'Tỷ lệ điện tử',
    signIns: 'Lượt đăng nhập', meetings: 'Cuộc họp',
    colId: 'Mã phản ánh', colWard: 'Phường, xã', colCategory: 'Lĩnh vực', colStatus: 'Trạng thái',
    colAge: 'Số ngày từ khi gửi', colOverdue: 'Số ngày quá hạn',
    noneOverdue: 'Không có phản ánh quá hạn.', noneOpen: 'Không có phản ánh đang chờ xử lý.',
    noData: 'Chưa có số liệu.', uncategorised: 'Chưa phân loại', unknownWard: 'Chưa xác định',
    received: 'phản ánh', residents: 'dân', perThousand: 'trên 1.000 dân', open: 'đang xử lý',
    overdueWord: 'quá hạn', meetingsWord: 'cuộc họp', legendLow: 'Thấp', legendHigh: 'Cao',
    clickToFilter: 'Nhấn để lọc các bảng theo phường, xã này',
    colStream: 'Luồng dữ liệu', colCheckpoint: 'Mốc kiểm toán cuối', colSigned: 'Ký lúc',
    colVerified: 'Kiểm tra lúc', colState: 'Tình trạng', upTo: n => `đến bản ghi số ${n}`,
    intact: 'Toàn vẹn', waiting: n => `${n} bản ghi mới chờ ký`, noCheckpoint: 'Chưa có mốc kiểm toán',
    notVerifying: 'Dịch vụ này không kiểm tra lịch sử (chưa cấu hình khóa kiểm toán).',
    notYet: 'Đang chờ lần kiểm tra đầu tiên.', cannotVerify: 'Không kiểm tra được',
    readModelAlarm: 'Mô hình đọc lệch với luồng (luồng bị tạo lại); cần dựng lại',
    readModelStopped: 'Ngừng cập nhật: luồng bị tạo lại hoặc cắt bớt; giữ số liệu cũ cho đến khi dựng lại',
    storeServer: 'Máy chủ NATS (kho sự kiện)', readModels: 'Mô hình đọc (số liệu)',
    diskFullStore: 'Đĩa đầy: sự kiện mới bị từ chối (503, bên gửi thử lại); tự hoạt động lại khi có chỗ trống',
    diskFullReadModels: 'Đĩa đầy: ngừng cập nhật số liệu, giữ số liệu cũ; tự cập nhật lại khi có chỗ trống',
    diskFullNode: 'Đĩa đầy: nút này ngừng lưu, các nút còn lại vẫn lưu khi còn đa số; tự hoạt động lại khi có chỗ trống',
    componentDown: 'Không hoạt động',
    atSeq: n => `tại bản ghi số ${n}`, alarmsTitle: 'Cảnh báo toàn vẹn',
    errorRead: 'Không đọc được dữ liệu',
    badAddress: 'Địa chỉ trang có phường, xã hoặc năm không có số liệu; đang hiển thị toàn thành phố, năm mới nhất.', otherStatus: 'Trạng thái khác', otherEvent: 'Sự kiện khác',
    months: ['Th1', 'Th2', 'Th3', 'Th4', 'Th5', 'Th6', 'Th7', 'Th8', 'Th9', 'Th10', 'Th11', 'Th12'],
    cityScope: '— toàn thành phố',
  },
  en: {
    skip: 'Skip to main content', title: 'Intelligent Operations Centre',
    city: 'Phan Thiết City · Lienthong', period: 'Period', year: 'Year',
    filtered: 'Filtered to', clear: 'Clear filter', updated: 'Updated', kpis: 'Key indicators',
    map: 'Wards and communes', per1000: 'Reports per 1,000 residents', overdueCount: 'Overdue reports',
    trends: 'Trends by month', trendReports: 'Reports received and resolved',
    trendDocs: 'Electronic document ratio (%)', trendSignins: 'Single sign-on logins',
    trendMeetings: 'Online meetings', overdue: 'Overdue reports',
    oldest: 'Oldest open reports', byStatus: 'Reports by status',
    byCategory: 'Reports by category', byAgency: 'Documents sent electronically, by agency',
    byApp: 'Logins by application', cityWide: 'City-wide figures (not filtered by ward).',
    live: 'Latest events', connecting: 'Connecting', connected: 'Live', disconnected: 'Disconnected, retrying',
    liveCount: 'Events received since the page opened:', integrity: 'History integrity',
    certificate: 'Certificate', certExpiring: n => `Expires in ${n} days — issue a new one`,
    certExpired: 'Expired — links using it are refused', certBroken: 'Unreadable or not valid yet',
    about: 'Data and documentation', datasets: 'Shared datasets', events: 'Event catalogue',
    metrics: 'Operational metrics', dataset: 'Dataset', langButton: 'VI', langName: 'Tiếng Việt',
    cardDocRatio: 'Electronic document ratio (secret documents excluded)',
    subDocs: (a, b) => `${a} of ${b} documents sent`,
    cardReceived: 'Field reports received',
    subWards: (a, b) => `from ${a} of ${b} wards and communes`,
    cardResolved: 'Field reports resolved', subShare: a => `${a} of those received`,
    cardOnTime: 'Field reports resolved on time',
    subMedian: a => `median resolution ${a} hours`,
    cardOpen: 'Reports in progress', subOverdue: a => `${a} overdue`,
    cardUsers: 'Single sign-on users', subLogins: a => `${a} logins`,
    cardActive: 'Active users', subMonthly: (a, m) => `${a} in ${m}`,
    cardDatasets: 'Open datasets', subResources: a => `${a} resources`,
    cardMeetings: 'Online meetings', subParticipations: a => `${a} participations`,
    cardWards: 'Wards and communes connected', subOfWards: a => `of ${a} wards and communes`,
    reportsReceived: 'Received', reportsResolved: 'Resolved', documentRatio: 'Electronic share',
    signIns: 'Logins', meetings: 'Meetings',
    colId: 'Report', colWard: 'Ward', colCategory: 'Category', colStatus: 'Status',
    colAge: 'Days since submitted', colOverdue: 'Days overdue',
    noneOverdue: 'No overdue reports.', noneOpen: 'No report awaits resolution.',
    noData: 'No figures yet.', uncategorised: 'Uncategorised', unknownWard: 'Unknown',
    received: 'reports', residents: 'residents', perThousand: 'per 1,000 residents', open: 'in progress',
    overdueWord: 'overdue', meetingsWord: 'meetings', legendLow: 'Low', legendHigh: 'High',
    clickToFilter: 'Press to filter the panels to this ward',
    colStream: 'Stream', colCheckpoint: 'Last checkpoint', colSigned: 'Signed',
    colVerified: 'Verified', colState: 'State', upTo: n => `up to record ${n}`,
    intact: 'Intact', waiting: n => `${n} new records await signing`, noCheckpoint: 'No checkpoint yet',
    notVerifying: 'This service does not verify the history (no audit key configured).',
    notYet: 'Waiting for the first verification.', cannotVerify: 'Cannot be verified',
    readModelAlarm: 'Read model ahead of its stream (the stream was recreated); rebuild it',
    readModelStopped: 'Stopped: the stream was recreated or truncated; the figures are kept until a rebuild',
    storeServer: 'NATS server (event store)', readModels: 'Read models (figures)',
    diskFullStore: 'Disk full: new events are refused (503, senders retry); resumes by itself when there is room',
    diskFullReadModels: 'Disk full: figures no longer updated, kept as they were; catch up by themselves when there is room',
    diskFullNode: 'Disk full: this node stores nothing more, the others go on while a majority; resumes by itself when there is room',
    componentDown: 'Down',
    atSeq: n => `at record ${n}`, alarmsTitle: 'Integrity alarms',
    errorRead: 'Cannot read the figures',
    badAddress: 'The address named a ward or year without figures; showing the whole city, latest year.', otherStatus: 'Other status', otherEvent: 'Other event',
    months: ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'],
    cityScope: '— whole city',
  },
};

// Open311 statuses as the city names them.
const STATUS = {
  vi: { open: 'Mới tiếp nhận', acknowledged: 'Đã tiếp nhận', investigating: 'Đang xác minh',
        in_progress: 'Đang xử lý', fixed: 'Đã xử lý', closed: 'Đã xử lý, đóng hồ sơ',
        duplicate: 'Trùng lặp', unable_to_fix: 'Không thể xử lý', not_responsible: 'Không thuộc thẩm quyền',
        overdue: 'Quá hạn' },
  en: { open: 'New', acknowledged: 'Acknowledged', investigating: 'Being verified',
        in_progress: 'In progress', fixed: 'Resolved', closed: 'Resolved, closed',
        duplicate: 'Duplicate', unable_to_fix: 'Cannot be fixed', not_responsible: 'Not responsible',
        overdue: 'Overdue' },
};

const STREAMS = {
  vi: { FIELD_REPORTS: 'Phản ánh hiện trường', DOCUMENTS: 'Văn bản điện tử', SSO: 'Đăng nhập một lần',
        OPEN_DATA: 'Dữ liệu mở', MEETINGS: 'Họp trực tuyến', AGENCIES: 'Đăng ký cơ quan', AUDIT: 'Kiểm toán',
        DLQ: 'Sự kiện bị từ chối' },
  en: { FIELD_REPORTS: 'Field reports', DOCUMENTS: 'Documents', SSO: 'Single sign-on',
        OPEN_DATA: 'Open data', MEETINGS: 'Online meetings', AGENCIES: 'Agency registry', AUDIT: 'Audit',
        DLQ: 'Rejected events' },
};

// Event types (the part after `vn.egov.<subsystem>.`).
const EVENTS = {
  vi: { 'report.submitted': 'Phản ánh mới', 'report.status_changed': 'Phản ánh đổi trạng thái',
        'report.reopened': 'Phản ánh mở lại', 'document.sent': 'Văn bản gửi đi',
        'document.received': 'Văn bản đến', 'document.registered': 'Văn bản vào sổ',
        'document.status_changed': 'Văn bản đổi trạng thái', 'document.updated': 'Văn bản cập nhật',
        'document.replaced': 'Văn bản thay thế', 'document.revoked': 'Văn bản thu hồi',
        'session.started': 'Đăng nhập', 'session.ended': 'Đăng xuất', 'login.failed': 'Đăng nhập thất bại',
        'user.registered': 'Tài khoản mới', 'account.locked': 'Tài khoản bị khóa',
        'account.deleted': 'Tài khoản bị xóa', 'account.roles_changed': 'Đổi quyền tài khoản',
        'account.groups_changed': 'Đổi nhóm tài khoản', 'profile.updated': 'Cập nhật hồ sơ',
        'dataset.published': 'Bộ dữ liệu công bố', 'dataset.updated': 'Bộ dữ liệu cập nhật',
        'dataset.withdrawn': 'Bộ dữ liệu rút lại', 'meeting.started': 'Cuộc họp bắt đầu',
        'meeting.ended': 'Cuộc họp kết thúc', 'participant.joined': 'Đại biểu tham gia',
        'participant.left': 'Đại biểu rời họp' },
  en: { 'report.submitted': 'New report', 'report.status_changed': 'Report status changed',
        'report.reopened': 'Report reopened', 'document.sent': 'Document sent',
        'document.received': 'Document received', 'document.registered': 'Document registered',
        'document.status_changed': 'Document status changed', 'document.updated': 'Document updated',
        'document.replaced': 'Document replaced', 'document.revoked': 'Document revoked',
        'session.started': 'Sign-in', 'session.ended': 'Sign-out', 'login.failed': 'Failed sign-in',
        'user.registered': 'New account', 'account.locked': 'Account locked',
        'account.deleted': 'Account deleted', 'account.roles_changed': 'Account roles changed',
        'account.groups_changed': 'Account groups changed', 'profile.updated': 'Profile updated',
        'dataset.published': 'Dataset published', 'dataset.updated': 'Dataset updated',
        'dataset.withdrawn': 'Dataset withdrawn', 'meeting.started': 'Meeting started',
        'meeting.ended': 'Meeting ended', 'participant.joined': 'Participant joined',
        'participant.left': 'Participant left' },
};

const TAMPERING = {
  vi: { altered: 'Nội dung bị sửa', missing: 'Thiếu bản ghi', reordered: 'Sai thứ tự',
        stream_recreated: 'Luồng bị xóa và tạo lại', checkpoint_signature_invalid: 'Chữ ký mốc không hợp lệ',
        checkpoint_unknown_key: 'Mốc được ký bằng khóa lạ', checkpoint_chain_broken: 'Chuỗi mốc bị đứt' },
  en: { altered: 'Content altered', missing: 'Records missing', reordered: 'Records reordered',
        stream_recreated: 'Stream deleted and recreated', checkpoint_signature_invalid: 'Checkpoint signature invalid',
        checkpoint_unknown_key: 'Checkpoint signed with an unknown key', checkpoint_chain_broken: 'Checkpoint chain broken' },
};

const params = new URLSearchParams(location.search);
const state = {
  lang: params.get('lang') === 'en' ? 'en' : 'vi',
  year: params.get('year') || '',
  ward: params.get('ward') || '',
  measure: 'per_1000_residents',
  kpi: null, panels: null, integrity: null,
  live: 0, feed: [], renders: 0,
};

const t = (key, ...args) => {
  const v = I18N[state.lang][key];
  return typeof v === 'function' ? v(...args) : v;
};
const locale = () => (state.lang === 'vi' ? 'vi-VN' : 'en-GB');
const num = (n, digits = 0) => (n == null ? '–'
  : new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(n));
const pct = x => (x == null ? '–'
  : new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 }).format(x));
const when = iso => (iso ? new Intl.DateTimeFormat(locale(), {
  day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  hour12: false, timeZone: 'Asia/Ho_Chi_Minh' }).format(new Date(iso)) : '–');
const monthName = ym => {
  const [y, m] = ym.split('-');
  return `${t('months')[Number(m) - 1]}/${y}`;
};
const statusName = s => STATUS[state.lang][s] || t('otherStatus');
const streamName = s => STREAMS[state.lang][s] || s.toLowerCase().replace(/_/g, ' ');
const eventName = ty => EVENTS[state.lang][ty.split('.').slice(3).join('.')] || t('otherEvent');
const wardName = slug => {
  const w = (state.panels?.wards || []).find(x => x.ward === slug);
  return w ? w.name : t('unknownWard');
};

// DOM helpers: text only.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null) continue;
    if (k === 'class') el.className = v; else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const $ = id => document.getElementById(id);

async function json(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!r.ok) {
    let detail = '';
    try { detail = (await r.json()).detail || ''; } catch (_) { /* not JSON */ }
    const err = new Error(`HTTP ${r.status} ${path}${detail ? ': ' + detail : ''}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

function query(extra = {}) {
  const q = new URLSearchParams();
  if (state.year) q.set('year', state.year);
  if (state.ward) q.set('ward', state.ward);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const text = q.toString();
  return text ? '?' + text : '';
}

// ---- static text and controls ----------------------------------------------------------

function translateStatic() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  const b = $('lang');
  b.textContent = t('langButton');
  b.setAttribute('aria-label', t('langName'));
  document.title = `${t('title')} — ${t('city').split(' · ')[0]}`;
}

function renderYears() {
  const sel = $('year');
  // Rebuilt only when the years change, so keyboard focus and an open list stay put.
  const key = state.panels.years.join(',') + state.lang;
  if (sel.dataset.key !== key) sel.dataset.key = key; else { sel.value = state.panels.year || ''; return; }
  sel.replaceChildren(...state.panels.years.map(y => h('option', { value: y }, `${t('year')} ${y}`)));
  sel.value = state.panels.year || '';
}

function renderLinks() {
  for (const el of document.querySelectorAll('[data-links]')) {
    const panel = el.dataset.links;
    if (panel === 'kpi') {
      el.replaceChildren(h('a', { href: '/api/v1/kpi' + (state.panels?.year ? `?year=${state.panels.year}` : '') }, 'JSON'));
      continue;
    }
    const base = `/api/v1/dashboard/${panel}`;
    el.replaceChildren(h('a', { href: base + query() }, 'JSON'), h('a', { href: base + query({ format: 'csv' }) }, 'CSV'));
    // The shared dataset the panel's figures are also published as.
    if (el.dataset.dataset) el.append(h('a', { href: `/catalog#dataset-${el.dataset.dataset}` }, t('dataset')));
  }
  const scope = state.ward ? `— ${wardName(state.ward)}` : t('cityScope');
  for (const el of document.querySelectorAll('[data-scope]')) el.textContent = scope;
  // Charts that are the whole city's whatever the ward say so while a ward is chosen.
  for (const el of document.querySelectorAll('figcaption[data-citywide]')) {
    el.textContent = t(el.dataset.i18n) + (state.ward ? ` ${t('cityScope')}` : '');
  }
  $('filter').hidden = !state.ward;
  $('filter-name').textContent = state.ward ? wardName(state.ward) : '';
}

// ---- KPI cards -------------------------------------------------------------------------

const get = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);

function cards() {
  const k = state.kpi; const p = state.panels;
  const out = [];
  const card = (path, label, format, sub) => {
    const value = get(k, path);
    if (value === undefined) return;
    out.push({ path, label, value, text: format === 'pct' ? pct(value) : num(value, 1), sub });
  };
  const fr = k.field_reports; const d = k.documents; const u = k.sso; const o = k.open_data; const m = k.meetings;
  if (d) card('documents.electronic_ratio', t('cardDocRatio'), 'pct', t('subDocs', num(d.sent_electronic), num(d.sent)));
  if (fr) {
    card('field_reports.total', t('cardReceived'), 'num', t('subWards', num(fr.wards_reporting), num(p.wards.length)));
    card('field_reports.resolved', t('cardResolved'), 'num', t('subShare', pct(fr.total ? fr.resolved / fr.total : null)));
    card('field_reports.on_time_ratio', t('cardOnTime'), 'pct', t('subMedian', num(fr.median_resolution_hours, 1)));
    card('field_reports.open', t('cardOpen'), 'num', t('subOverdue', num(p.overdue_open)));
  }
  if (u) {
    card('sso.registered_users', t('cardUsers'), 'num', t('subLogins', num(u.logins)));
    const mau = u.monthly_active_users;
    card('sso.active_users', t('cardActive'), 'num', mau ? t('subMonthly', num(mau.users), monthName(mau.month)) : '');
  }
  if (o) card('open_data.datasets', t('cardDatasets'), 'num', t('subResources', num(o.resources)));
  if (m) {
    card('meetings.meetings', t('cardMeetings'), 'num', t('subParticipations', num(m.participations)));
    card('meetings.wards_connected', t('cardWards'), 'num', t('subOfWards', num(p.wards.length)));
  }
  $('cards').replaceChildren(...out.map(c => h('div', { class: 'card', 'data-kpi': c.path },
    h('div', { class: 'label', id: `kpi-${c.path}` }, c.label),
    h('div', { class: 'value', 'data-value': JSON.stringify(c.value), 'aria-describedby': `kpi-${c.path}` }, c.text),
    h('div', { class: 'sub' }, c.sub))));
}

// ---- map -------------------------------------------------------------------------------

const BLUES = ['#e8f1fa', '#bcd7f0', '#7fb1de', '#2b6cab', '#0b4f91'];
const REDS = ['#fdeceb', '#f6c1bd', '#ec8a83', '#b3352c', '#8f1d16'];

function renderMap() {
  // Keyboard users keep their place: the tile that had focus has it again after a redraw.
  const focused = document.activeElement?.closest?.('#map [data-ward]')?.dataset.ward;
  const wards = state.panels.wards;
  const measure = state.measure;
  const values = wards.map(w => w[measure]);
  const max = Math.max(...values, 0);
  const palette = measure === 'overdue' ? REDS : BLUES;
  const step = v => (max <= 0 || v <= 0 ? 0 : Math.min(4, Math.ceil((v / max) * 4)));
  const W = 112; const H = 72; const G = 6;
  const cols = Math.max(...wards.map(w => w.col)) + 1; const rows = Math.max(...wards.map(w => w.row)) + 1;
  const svg = s('svg', { viewBox: `0 0 ${cols * (W + G)} ${rows * (H + G)}`, role: 'group', 'aria-label': t('map') });
  for (const w of wards) {
    const k = step(w[measure]);
    const fill = palette[k];
    const ink = k >= 3 ? '#ffffff' : '#17212b';
    const short = w.name.replace(/^(Phường|Xã)\s+/, '');
    const figure = measure === 'overdue' ? num(w.overdue) : num(w.per_1000_residents, 1);
    const summary = `${w.name}: ${num(w.received)} ${t('received')}, ${num(w.per_1000_residents, 1)} ${t('perThousand')}, `
      + `${num(w.open)} ${t('open')}, ${num(w.overdue)} ${t('overdueWord')}, ${num(w.meetings)} ${t('meetingsWord')}`
      + ` (${num(w.population)} ${t('residents')})`;
    const g = s('g', {
      class: 'tile' + (state.ward === w.ward ? ' selected' : ''), 'data-ward': w.ward, tabindex: 0, role: 'button',
      'aria-pressed': state.ward === w.ward ? 'true' : 'false', 'aria-label': `${summary}. ${t('clickToFilter')}`,
      transform: `translate(${w.col * (W + G)}, ${w.row * (H + G)})`,
    },
    s('title', {}, summary),
    s('rect', { width: W, height: H, rx: 6, fill }),
    s('text', { x: W / 2, y: 30, 'text-anchor': 'middle', fill: ink, 'font-weight': 600 }, short),
    s('text', { x: W / 2, y: 52, 'text-anchor': 'middle', fill: ink }, figure));
    const show = () => { $('ward-detail').textContent = summary; };
    g.addEventListener('mouseenter', show);
    g.addEventListener('focus', show);
    g.addEventListener('click', () => selectWard(w.ward));
    g.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectWard(w.ward); }
    });
    svg.append(g);
  }
  $('map').replaceChildren(svg);
  if (focused) svg.querySelector(`[data-ward="${CSS.escape(focused)}"]`)?.focus();
  $('legend').replaceChildren(h('span', {}, t('legendLow')),
    ...palette.map(c => { const i = h('i'); i.style.background = c; return i; }),
    h('span', {}, `${t('legendHigh')} (${measure === 'overdue' ? num(max) : num(max, 1)})`));
}

function selectWard(slug) {
  delete $('error').dataset.keep;
  state.ward = state.ward === slug ? '' : slug;
  remember();
  refresh();
}

// ---- charts ----------------------------------------------------------------------------

function chart(el, months, series, format) {
  const W = 360; const H = 170; const L = 44; const R = 8; const T = 22; const B = 22;
  const all = series.flatMap(x => x.values).filter(v => v != null);
  const max = Math.max(1e-9, ...all);
  const nice = niceMax(max);
  const x = i => L + (i + 0.5) * ((W - L - R) / Math.max(1, months.length));
  const y = v => T + (H - T - B) * (1 - v / nice);
  const label = series.map(x => x.label).join(', ');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label });
  for (let i = 0; i <= 4; i++) {
    const v = (nice * i) / 4;
    svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis', x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, format(v)));
  }
  months.forEach((m, i) => {
    if (months.length <= 12 || i % Math.ceil(months.length / 12) === 0) {
      svg.append(s('text', { class: 'axis', x: x(i), y: H - 6, 'text-anchor': 'middle' }, t('months')[Number(m.slice(5)) - 1]));
    }
  });
  const bw = ((W - L - R) / Math.max(1, months.length)) * (0.7 / series.filter(z => z.kind === 'bar').length || 1);
  let barIndex = 0;
  series.forEach((se, si) => {
    svg.append(s('rect', { x: L + si * 110, y: 4, width: 10, height: 10, fill: se.color }),
      s('text', { class: 'key', x: L + si * 110 + 14, y: 13 }, se.label));
    if (se.kind === 'bar') {
      const offset = barIndex++;
      se.values.forEach((v, i) => {
        if (v == null) return;
        const bx = x(i) - (bw * series.filter(z => z.kind === 'bar').length) / 2 + offset * bw;
        svg.append(s('rect', { x: bx, y: y(v), width: Math.max(1, bw - 1), height: y(0) - y(v), fill: se.color },
          s('title', {}, `${monthName(months[i])}: ${format(v)}`)));
      });
    } else {
      const pts = se.values.map((v, i) => (v == null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
      svg.append(s('polyline', { points: pts.join(' '), fill: 'none', stroke: se.color, 'stroke-width': 2.5 }));
      se.values.forEach((v, i) => {
        if (v == null) return;
        svg.append(s('circle', { cx: x(i), cy: y(v), r: 3.5, fill: se.color }, s('title', {}, `${se.label} ${monthName(months[i])}: ${format(v)}`)));
      });
    }
  });
  el.className = 'chart';
  el.replaceChildren(svg);
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function renderTrends() {
  const rows = state.panels.trends;
  const months = rows.map(r => r.month);
  const n = v => num(v);
  chart($('chart-reports'), months, [
    { label: t('reportsReceived'), values: rows.map(r => r.reports_received), color: '#1f6fbf', kind: 'bar' },
    { label: t('reportsResolved'), values: rows.map(r => r.reports_resolved), color: '#1b7a3a', kind: 'bar' },
  ], n);
  chart($('chart-docs'), months, [
    { label: t('documentRatio'), values: rows.map(r => (r.document_ratio == null ? null : r.document_ratio * 100)), color: '#6b3fa0', kind: 'line' },
  ], v => num(v, 1));
  chart($('chart-signins'), months, [
    { label: t('signIns'), values: rows.map(r => r.sign_ins), color: '#c25e00', kind: 'bar' },
  ], n);
  chart($('chart-meetings'), months, [
    { label: t('meetings'), values: rows.map(r => r.meetings), color: '#0b7a75', kind: 'bar' },
  ], n);
}

// ---- tables and bars -------------------------------------------------------------------

function reportsTable(el, rows, withOverdue, empty) {
  const head = [t('colId'), t('colWard'), t('colCategory'), t('colStatus'), t('colAge')];
  if (withOverdue) head.push(t('colOverdue'));
  if (!rows.length) {
    el.replaceChildren(h('caption', {}, empty));
    return;
  }
  el.replaceChildren(
    h('thead', {}, h('tr', {}, ...head.map((c, i) => h('th', { scope: 'col', class: i >= 4 ? 'num' : null }, c)))),
    h('tbody', {}, ...rows.map(r => {
      const cells = [
        h('td', { class: 'id' }, h('a', { href: r.href }, r.report_id)),
        h('td', { 'data-ward': r.ward }, r.ward_name),
        h('td', {}, r.category_name || t('uncategorised')),
        h('td', {}, r.overdue ? `${statusName(r.status)} · ${STATUS[state.lang].overdue}` : statusName(r.status)),
        h('td', { class: 'num' }, num(r.age_days)),
      ];
      if (withOverdue) cells.push(h('td', { class: 'num' }, num(r.overdue_days)));
      return h('tr', {}, ...cells);
    })));
}

function bars(el, rows, format = num) {
  if (!rows.length) { el.replaceChildren(h('p', { class: 'note' }, t('noData'))); return; }
  const max = Math.max(1e-9, ...rows.map(r => r.value || 0));
  el.replaceChildren(...rows.map(r => {
    const bar = h('div', { class: 'bar', role: 'presentation' });
    bar.style.width = `${(100 * (r.value || 0)) / max}%`;
    return h('div', { class: 'row' }, h('span', {}, r.label), h('div', {}, bar), h('span', { class: 'num' }, format(r.value)));
  }));
}

function renderLists() {
  const p = state.panels;
  reportsTable($('overdue'), p.overdue, true, t('noneOverdue'));
  reportsTable($('oldest'), p.oldest_open, false, t('noneOpen'));
  bars($('statuses'), p.statuses.map(r => ({ label: statusName(r.status), value: r.reports })).sort((a, b) => b.value - a.value));
  bars($('categories'), p.categories.map(r => ({ label: r.category_name, value: r.received })));
  bars($('agencies'), p.agencies.filter(a => a.electronic_ratio != null).slice(0, 15)
    .map(a => ({ label: a.agency_name || '–', value: a.electronic_ratio })), pct);
  bars($('applications'), p.applications.map(a => ({ label: state.lang === 'vi' ? a.name_vi : a.name_en, value: a.logins })));
}

// ---- integrity -------------------------------------------------------------------------

function renderIntegrity() {
  const data = state.integrity;
  const el = $('integrity');
  const rows = [];
  // Certificates in use that expire within 30 days, or have: a warning row each.
  for (const c of data.certificates || []) {
    const verdict = c.state === 'expiring' ? t('certExpiring', num(c.days_left))
      : c.state === 'expired' ? t('certExpired') : t('certBroken');
    rows.push(h('tr', { class: 'alarm', 'data-certificate': c.subject || c.path, 'data-alarm': 'true' },
      h('td', {}, `${t('certificate')} ${c.subject || c.path}`), h('td', {}, '–'),
      h('td', {}, '–'), h('td', {}, when(c.not_after)),
      h('td', { class: 'alarm' }, verdict)));
  }
  // Components down (a full disk, a server restarting): a red row each, the reason in full
  // on hover.
  for (const [component, reason] of Object.entries(data.down || {})) {
    const store = component.startsWith('nats-server');
    const name = store ? `${t('storeServer')}${component.slice('nats-server'.length)}`
      : component === 'read models' ? t('readModels') : component;
    const verdict = !/disk is full/.test(reason) ? t('componentDown')
      : !store ? t('diskFullReadModels')
      : /majority/.test(reason) ? t('diskFullNode') : t('diskFullStore');
    rows.push(h('tr', { class: 'alarm', 'data-component': component, 'data-alarm': 'true', title: reason },
      h('td', {}, name), h('td', {}, '–'), h('td', {}, '–'), h('td', {}, '–'),
      h('td', { class: 'alarm' }, verdict)));
  }
  if (!data.verifying && !rows.length) { el.replaceChildren(h('caption', {}, t('notVerifying'))); return; }
  for (const v of data.streams) {
    const alarm = v.alarm != null;
    let verdict;
    if (v.read_model_ahead) verdict = t('readModelAlarm');
    else if (v.tampering) verdict = `${TAMPERING[state.lang][v.tampering] || t('alarmsTitle')}${v.first_bad_seq ? ' ' + t('atSeq', num(v.first_bad_seq)) : ''}`;
    else if (alarm) verdict = t('cannotVerify');
    else if (!v.checkpoints) verdict = t('noCheckpoint');
    else verdict = t('intact') + (v.stream_last > v.covered_to ? ` · ${t('waiting', num(v.stream_last - v.covered_to))}` : '');
    rows.push(h('tr', { class: alarm ? 'alarm' : null, 'data-stream': v.stream, 'data-alarm': alarm ? 'true' : 'false' },
      h('td', {}, streamName(v.stream)),
      h('td', {}, v.checkpoints ? t('upTo', num(v.covered_to)) : '–'),
      h('td', {}, when(v.last_checkpoint_at)),
      h('td', {}, when(v.verified_at)),
      h('td', { class: alarm ? 'alarm' : 'ok' }, verdict)));
  }
  // The read models that stopped following a stream recreated or truncated under them.
  for (const stream of Object.keys(data.replay_alarms || {})) {
    rows.push(h('tr', { class: 'alarm', 'data-stream': stream, 'data-alarm': 'true', 'data-replay': 'true' },
      h('td', {}, streamName(stream)), h('td', {}, '–'), h('td', {}, '–'), h('td', {}, '–'),
      h('td', { class: 'alarm' }, t('readModelStopped'))));
  }
  if (!rows.length) { el.replaceChildren(h('caption', {}, t('notYet'))); return; }
  el.replaceChildren(
    h('thead', {}, h('tr', {}, ...['colStream', 'colCheckpoint', 'colSigned', 'colVerified', 'colState'].map(c => h('th', { scope: 'col' }, t(c))))),
    h('tbody', {}, ...rows));
}

// ---- live feed -------------------------------------------------------------------------

function renderFeed() {
  const shown = state.feed.filter(e => !state.ward || !e.ward || e.ward === state.ward).slice(0, 30);
  $('feed').replaceChildren(...shown.map(e => h('li', { class: e.fresh ? 'new' : null, 'data-type': e.type, 'data-stream': e.stream, 'data-sequence': e.sequence },
    h('time', { datetime: e.time || '' }, e.time ? new Intl.DateTimeFormat(locale(), {
      timeStyle: 'medium', timeZone: 'Asia/Ho_Chi_Minh' }).format(new Date(e.time)) : '–'),
    h('span', {}, [eventName(e.type), streamName(e.stream), e.ward ? wardName(e.ward) : null].filter(Boolean).join(' · ')))));
  for (const e of state.feed) e.fresh = false;
  const count = $('live-count');
  count.textContent = num(state.live);
  count.dataset.value = String(state.live);
}

function connectLive() {
  const badge = $('live-state');
  const source = new EventSource('/api/v1/live');
  source.addEventListener('open', () => { badge.className = 'badge on'; badge.dataset.i18n = 'connected'; badge.textContent = t('connected'); });
  source.addEventListener('error', () => { badge.className = 'badge off'; badge.dataset.i18n = 'disconnected'; badge.textContent = t('disconnected'); });
  const seen = new Set();
  const add = (msg, fresh) => {
    if (seen.has(msg.lastEventId)) return false; // sent again after a reconnection
    seen.add(msg.lastEventId);
    if (seen.size > 2000) seen.delete(seen.values().next().value); // the oldest first
    const e = JSON.parse(msg.data);
    e.fresh = fresh;
    state.feed.unshift(e);
    state.feed.length = Math.min(state.feed.length, 200);
    return true;
  };
  // The newest events already folded, when the page connects: shown, not counted.
  source.addEventListener('recent', msg => { if (add(msg, false)) renderFeed(); });
  // Fell behind and missed some: the figures are read again, and the count says so.
  source.addEventListener('lagged', msg => {
    state.live += JSON.parse(msg.data).missed || 0;
    renderFeed();
    soon();
  });
  source.addEventListener('event', msg => {
    if (!add(msg, true)) return;
    state.live += 1;
    renderFeed();
    soon();
  });
}

// ---- refresh ---------------------------------------------------------------------------

let timer = null;
function soon() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 700);
}

function remember() {
  const q = new URLSearchParams();
  if (state.year) q.set('year', state.year);
  if (state.ward) q.set('ward', state.ward);
  if (state.lang !== 'vi') q.set('lang', state.lang);
  history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
}

let running = null;
async function refresh() {
  if (running) { soon(); return; }
  document.body.dataset.state = 'loading';
  running = (async () => {
    try {
      const panels = await json('/api/v1/dashboard' + query());
      const year = state.year || panels.year || '';
      const [kpi, integrity] = await Promise.all([
        json('/api/v1/kpi' + (year ? `?year=${encodeURIComponent(year)}` : '')),
        json('/api/v1/integrity'),
      ]);
      Object.assign(state, { panels, kpi, integrity });
      render();
      if (!$('error').dataset.keep) $('error').hidden = true;
      state.renders += 1;
      document.body.dataset.renders = String(state.renders);
      document.body.dataset.year = panels.year || '';
      document.body.dataset.ward = state.ward;
      document.body.dataset.state = 'ready';
    } catch (e) {
      if (e.status === 400 && (state.ward || state.year)) {
        // A shared address with a ward or year that is not (or no longer) there: show the
        // city's latest year instead, and say why.
        state.ward = ''; state.year = ''; remember();
        $('error').textContent = t('badAddress');
        $('error').hidden = false;
        $('error').dataset.keep = '1'; // until the user chooses something
        soon();
        return;
      }
      $('error').textContent = `${t('errorRead')}: ${e.message}`;
      $('error').hidden = false;
      document.body.dataset.state = 'error';
      // The alarms are shown even when the figures cannot be read: that is when they matter.
      try {
        state.integrity = await json('/api/v1/integrity');
        renderIntegrity();
      } catch (_) { /* the service itself does not answer */ }
    } finally {
      running = null;
    }
  })();
  return running;
}

function render() {
  translateStatic();
  renderYears();
  renderLinks();
  cards();
  renderMap();
  renderTrends();
  renderLists();
  renderIntegrity();
  renderFeed();
  $('updated').textContent = when(new Date().toISOString());
}

function start() {
  translateStatic();
  $('year').addEventListener('change', e => { delete $('error').dataset.keep; state.year = e.target.value; remember(); refresh(); });
  $('clear-filter').addEventListener('click', () => { state.ward = ''; remember(); refresh(); });
  $('lang').addEventListener('click', () => { state.lang = state.lang === 'vi' ? 'en' : 'vi'; remember(); if (state.panels) render(); else translateStatic(); });
  for (const r of document.querySelectorAll('input[name=measure]')) {
    r.addEventListener('change', e => { state.measure = e.target.value; if (state.panels) renderMap(); });
  }
  connectLive();
  refresh();
  setInterval(refresh, 15000);
}

document.addEventListener('DOMContentLoaded', start);
