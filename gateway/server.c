/* server.c -- callbus-gateway's event loop and libwebsockets context: one
 * vhost serving the operator page (static files at /), the WebSocket API
 * (/ws, subprotocol callbus.v1), /metrics (Prometheus text) and /health,
 * plain or TLS.
 *
 * The loop is libev's (epoll), created here and handed to lws as a foreign
 * loop, because lws's own poll() loop costs O(connections) per wake-up: with
 * 10,000 clients it alone used a whole core. Owning the loop also lets us
 * stop it: SIGINT/SIGTERM watchers break it, then the lws context is
 * destroyed and the loop run until lws has let go of it. lws needs its libev
 * plugin (Debian: libwebsockets-evlib-ev); without it the gateway refuses to
 * start, saying so, rather than falling back to the slow loop. */
#include "gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "alloc.h"
#include "clock.h"
#include "datadir.h"
#include "log.h"
#include "sbuf.h"
#include "sdnotify.h"

/* ---------- /metrics and /health ---------- */

typedef struct http_pss {
    char *body;
    size_t len;
    int status;
} http_pss;

static char *render_metrics(gw *g, size_t *len) {
    sbuf f;
    sbuf_init(&f);
    view_stats vs;
    view_get_stats(g->view, &vs);
    const gw_metrics *m = &g->m;
#define C(name, help, v) sbuf_printf(&f, "# HELP callbus_gateway_" name " " help "\n# TYPE callbus_gateway_" name " counter\ncallbus_gateway_" name " %llu\n", (unsigned long long)(v))
#define G(name, help, v) sbuf_printf(&f, "# HELP callbus_gateway_" name " " help "\n# TYPE callbus_gateway_" name " gauge\ncallbus_gateway_" name " %llu\n", (unsigned long long)(v))
    G("connections", "open WebSocket connections", g->nsessions);
    G("authenticated_connections", "authenticated WebSocket connections", g->nauthed);
    G("kafka_up", "1 while the consumer reaches the site's Kafka, 0 while it does not", !g->kafka_down);
    C("connections_total", "WebSocket connections accepted", m->connections_total);
    C("auth_ok_total", "successful authentications", m->auth_ok);
    C("auth_failed_total", "refused tokens", m->auth_failed);
    C("auth_timeouts_total", "connections closed for not authenticating in time", m->auth_timeouts);
    C("closed_frame_too_big_total", "connections closed for a frame over max_frame (1009)", m->closed_frame_too_big);
    C("rate_limited_messages_total", "messages refused by the rate limit", m->rate_limited_msgs);
    C("closed_rate_limited_total", "connections closed for flooding (4008)", m->closed_rate_limited);
    C("refused_max_connections_total", "connections refused over max_connections (4008)", m->refused_max_connections);
    C("refused_unauthed_total", "connections refused over max_unauthed or max_unauthed_per_address (4008)",
      m->refused_unauthed);
    G("unauthenticated_connections", "WebSocket connections that have not authenticated yet", g->nunauthed);
    C("refused_origin_total", "connections refused for their Origin (4009)", m->refused_origin);
    C("refused_upgrades_total", "upgrade requests refused: not a WebSocket at /ws with subprotocol " GW_PROTOCOL,
      m->refused_upgrades);
    C("closed_idle_total", "connections closed after idle_timeout", m->closed_idle);
    C("closed_slow_total", "connections dropped for not reading their messages", m->closed_slow);
    C("closed_token_expired_total", "connections closed when their token expired (4002)", m->closed_token_expired);
    C("bad_json_total", "messages that were not JSON objects", m->bad_json);
    C("unknown_type_total", "messages of an unknown type", m->unknown_type);
    C("protocol_errors_total", "protocol violations (4000)", m->protocol_errors);
    C("commands_sent_total", "commands produced to Kafka", m->commands_sent);
    C("commands_forbidden_total", "commands refused as forbidden", m->commands_forbidden);
    C("commands_invalid_total", "commands refused as invalid", m->commands_invalid);
    C("commands_failed_total", "commands Kafka did not take", m->commands_failed);
    C("messages_in_total", "WebSocket messages received", m->msgs_in);
    C("messages_out_total", "WebSocket messages sent", m->msgs_out);
    C("kafka_messages_total", "messages consumed from Kafka", m->kafka_msgs);
    C("kafka_errors_total", "consumer errors", m->kafka_errors);
    C("view_deliveries_total", "view messages delivered to streams", m->view_deliveries);
    G("view_operators", "operators in the view", vs.operators);
    G("view_active_calls", "active calls in the view", vs.active_calls);
    G("view_queues", "queues in the view", vs.queues);
    G("view_history", "resume history messages kept", vs.history);
#undef C
#undef G
    *len = f.len;
    return f.data;
}

/* Whether the comma-separated Sec-WebSocket-Protocol list names ours. */
static int offers_our_protocol(const char *protocols) {
    char list[256];
    if (!protocols || !*protocols || strlen(protocols) >= sizeof(list)) return 0; /* as lws_hdr_copy */
    snprintf(list, sizeof(list), "%s", protocols);
    for (char *save = NULL, *t = strtok_r(list, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
        if (!strcmp(t, GW_PROTOCOL)) return 1;
    return 0;
}

int gw_upgrade_decision(const char *uri, const char *upgrade, const char *protocols, const char **why) {
    if (!uri || strcmp(uri, "/ws")) {
        *why = "WebSocket only at /ws";
        return HTTP_STATUS_NOT_FOUND;
    }
    if (!upgrade || strcasecmp(upgrade, "websocket")) {
        *why = "only a WebSocket upgrade is served";
        return HTTP_STATUS_BAD_REQUEST;
    }
    if (!offers_our_protocol(protocols)) {
        *why = "the WebSocket needs subprotocol " GW_PROTOCOL " (Sec-WebSocket-Protocol)";
        return HTTP_STATUS_BAD_REQUEST;
    }
    *why = NULL;
    return 0;
}

/* Every upgrade request comes here first, bound to this "http" protocol.
 * One without our subprotocol would otherwise be bound to it by lws (its
 * default for a missing Sec-WebSocket-Protocol) and get 101 on any path:
 * a WebSocket that no session control (auth and idle timeouts, origin,
 * connection count) ever sees. So anything but a WebSocket upgrade at /ws
 * offering callbus.v1 is answered with an HTTP error here (the decision is
 * gw_upgrade_decision, on the headers alone, fuzzed apart from lws).
 * Returns what LWS_CALLBACK_HTTP_CONFIRM_UPGRADE expects: 0 to go on, 1
 * when a response was sent. */
static int confirm_upgrade(gw *g, struct lws *wsi, const char *upgrade) {
    char uri[64] = "", protocols[256] = "", peer[64] = "?";
    const char *why;
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0) uri[0] = 0;
    if (lws_hdr_copy(wsi, protocols, sizeof(protocols), WSI_TOKEN_PROTOCOL) <= 0) protocols[0] = 0;
    int status = gw_upgrade_decision(uri, upgrade, protocols, &why);
    if (!status) return 0;
    g->m.refused_upgrades++;
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    log_warn("gateway: %s: upgrade refused (%d): %s", peer, status, why);
    if (lws_return_http_status(wsi, (unsigned int)status, why)) return -1;
    return 1;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
    http_pss *p = user;
    gw *g = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(g, wsi, in);
    case LWS_CALLBACK_HTTP: {
        const char *uri = in;
        free(p->body);
        p->body = NULL;
        if (uri && !strcmp(uri, "/metrics")) {
            p->body = render_metrics(g, &p->len);
            p->status = HTTP_STATUS_OK;
        } else if (uri && !strcmp(uri, "/health")) {
            sbuf b;
            sbuf_init(&b);
            sbuf_printf(&b, "{\"status\":\"ok\",\"site\":\"%s\",\"connections\":%zu,\"kafka\":\"%s\"}\n",
                        g->cfg->site, g->nsessions, g->kafka_down ? "down" : "up");
            p->body = b.data;
            p->len = b.len;
            p->status = HTTP_STATUS_OK;
        } else {
            return lws_callback_http_dummy(wsi, reason, user, in, len);
        }
        unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *q = start, *end = hdr + sizeof(hdr) - 1;
        const char *ctype = !strcmp(uri, "/metrics") ? "text/plain; version=0.0.4" : "application/json";
        if (lws_add_http_common_headers(wsi, (unsigned int)p->status, ctype, (lws_filepos_t)p->len, &q, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-store", 8, &q, end) ||
            lws_finalize_write_http_header(wsi, start, &q, end))
            return 1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!p || !p->body) break;
        unsigned char *buf = xmalloc(LWS_PRE + p->len + 1);
        memcpy(buf + LWS_PRE, p->body, p->len);
        int n = lws_write(wsi, buf + LWS_PRE, p->len, LWS_WRITE_HTTP_FINAL);
        free(buf);
        free(p->body);
        p->body = NULL;
        if (n < (int)p->len) return -1;
        if (lws_http_transaction_completed(wsi)) return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
        /* lws also closes connections that never got their per-session data */
        if (!p) break;
        free(p->body);
        p->body = NULL;
        break;
    default: break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---------- loop watchers: Kafka, deadlines, signals ---------- */

/* Messages per loop turn. Small, so that the sockets are written between
 * batches: a Kafka burst must not outgrow gateway.max_queue_kb in one turn
 * and get clients that do read dropped as slow. */
#define KAFKA_BATCH 64

static void serve_kafka(gw *g) {
    int more = gw_kafka_in_poll(g->kin, KAFKA_BATCH);
    gw_commands_out_poll(g->cout);
    if (more) ev_idle_start(g->loop, &g->kafka_more);
    else ev_idle_stop(g->loop, &g->kafka_more);
}

static void on_kafka_wake(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    (void)revents;
    gw *g = w->data;
    char drain[256];
    /* Drain first: a message that arrives after this writes again. */
    while (read(g->wake[0], drain, sizeof(drain)) > 0) {
    }
    serve_kafka(g);
}

static void on_kafka_more(struct ev_loop *loop, ev_idle *w, int revents) {
    (void)loop;
    (void)revents;
    serve_kafka(w->data);
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop;
    (void)revents;
    gw *g = w->data;
    double mono = mono_now();
    gw_sessions_sweep(g, mono, wall_now());
    gw_kafka_in_lookup(g->kin, mono);
    /* Delivery reports of commands, in case a wake-up was missed. */
    gw_commands_out_poll(g->cout);
    /* Pinged from the loop, so a loop that hangs stops the pings. */
    sdnotify_watchdog();
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)revents;
    gw *g = w->data;
    log_info("gateway: %s received", strsignal(w->signum));
    g->stopping = 1;
    ev_break(loop, EVBREAK_ALL);
}

static int start_loop(gw *g, char *err, size_t errlen) {
    g->loop = ev_loop_new(EVFLAG_AUTO);
    if (!g->loop) {
        snprintf(err, errlen, "cannot create the libev event loop");
        return -1;
    }
    if (pipe2(g->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    ev_io_init(&g->kafka_wake, on_kafka_wake, g->wake[0], EV_READ);
    ev_idle_init(&g->kafka_more, on_kafka_more);
    ev_timer_init(&g->sweep, on_sweep, 1.0, 1.0);
    ev_signal_init(&g->sigint, on_signal, SIGINT);
    ev_signal_init(&g->sigterm, on_signal, SIGTERM);
    g->kafka_wake.data = g->kafka_more.data = g->sweep.data = g->sigint.data = g->sigterm.data = g;
    ev_io_start(g->loop, &g->kafka_wake);
    ev_timer_start(g->loop, &g->sweep);
    ev_signal_start(g->loop, &g->sigint);
    ev_signal_start(g->loop, &g->sigterm);
    return 0;
}

static void stop_loop(gw *g) {
    if (!g->loop) return;
    ev_io_stop(g->loop, &g->kafka_wake);
    ev_idle_stop(g->loop, &g->kafka_more);
    ev_timer_stop(g->loop, &g->sweep);
    ev_signal_stop(g->loop, &g->sigint);
    ev_signal_stop(g->loop, &g->sigterm);
}

/* ---------- setup ---------- */

static struct lws_protocols protocols[] = {
    {"http", http_callback, sizeof(http_pss), 0, 0, NULL, 0},
    {GW_PROTOCOL, gw_ws_callback, sizeof(gw_session), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static const struct lws_http_mount mount_health = {
    .mountpoint = "/health", .origin = "http", .origin_protocol = LWSMPRO_CALLBACK,
    .mountpoint_len = 7};
static const struct lws_http_mount mount_metrics = {
    .mount_next = &mount_health, .mountpoint = "/metrics", .origin = "http",
    .origin_protocol = LWSMPRO_CALLBACK, .mountpoint_len = 8};

static int load_key(gw *g, char *err, size_t errlen) {
    const callbus_config *c = g->cfg;
    if (*c->gateway.jwt_key_file) {
        FILE *f = fopen(c->gateway.jwt_key_file, "rb");
        if (!f) {
            snprintf(err, errlen, "gateway.jwt_key_file %s: %s", c->gateway.jwt_key_file, strerror(errno));
            return -1;
        }
        g->key = xmalloc(AUTH_MAX_TOKEN * 2 + 1);
        size_t n = fread(g->key, 1, AUTH_MAX_TOKEN * 2, f);
        fclose(f);
        /* an HS256 secret file may end with a newline the editor added */
        if (!strcmp(c->gateway.jwt_alg, "HS256"))
            while (n && (g->key[n - 1] == '\n' || g->key[n - 1] == '\r')) n--;
        g->key[n] = 0;
        g->key_len = n;
    } else {
        g->key = (unsigned char *)xstrdup(c->gateway.jwt_secret);
        g->key_len = strlen(c->gateway.jwt_secret);
    }
    g->auth.alg = strcmp(c->gateway.jwt_alg, "RS256") ? AUTH_HS256 : AUTH_RS256;
    g->auth.key = g->key;
    g->auth.key_len = g->key_len;
    g->auth.site = c->site;
    g->auth.leeway_s = c->gateway.jwt_leeway_s;
    g->auth.issuer = *c->gateway.jwt_issuer ? c->gateway.jwt_issuer : NULL;
    g->auth.audience = *c->gateway.jwt_audience ? c->gateway.jwt_audience : NULL;
    const char *why = auth_config_problem(&g->auth);
    if (why) {
        snprintf(err, errlen, "gateway authentication settings: %s", why);
        return -1;
    }
    return 0;
}

static int evlib_missing;   /* lws said it could not load its libev plugin */

static void lws_log_to_ours(int level, const char *line) {
    if (strstr(line, "evlib plugin")) evlib_missing = 1;
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') n--;
    /* lws lines start with their own timestamp: keep the message only */
    const char *p = strstr(line, ": ");
    if (p && p - line < 40) p += 2; else p = line;
    size_t len = p - line < (ptrdiff_t)n ? n - (size_t)(p - line) : 0;
    /* lws may quote a request (a header it did not like) */
    char safe[256];
    log_safe(safe, sizeof(safe), p, len);
    if (level & LLL_ERR) log_warn("lws: %s", safe);
    else log_debug("lws: %s", safe);
}

/* Checked before anything else starts: a page that is not there would be
 * 404s for every operator, not a message for the engineer. */
static int find_www(gw *g, char *err, size_t errlen) {
    const char *given = g->cfg->gateway.www_dir;
    struct stat st;
    if (*given) {
        snprintf(g->www_dir, sizeof(g->www_dir), "%s", given);
        if (stat(given, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        snprintf(err, errlen, "gateway.www_dir %s: not a directory", given);
        return -1;
    }
    if (datadir_find("www", "gateway/www", g->www_dir, sizeof(g->www_dir)) == 0) return 0;
    snprintf(err, errlen, "no operator page: %s is missing (make install puts it there) and gateway.www_dir is "
             "unset", g->www_dir);
    return -1;
}

gw *gw_new(const callbus_config *cfg, char *err, size_t errlen) {
    gw *g = xcalloc(1, sizeof(*g));
    g->cfg = cfg;
    g->wake[0] = g->wake[1] = -1;
    if (find_www(g, err, errlen) < 0 || load_key(g, err, errlen) < 0) goto fail;
    snprintf(g->epoch, sizeof(g->epoch), "%llx", (unsigned long long)(wall_now() * 1000));
    g->view = view_new((size_t)cfg->gateway.history, g->epoch);
    g->kin = gw_kafka_in_new(cfg, g->view, &g->m, gw_clients_of(g), &g->stopping, err, errlen);
    if (!g->kin) goto fail;
    g->cout = gw_commands_out_new(g, err, errlen);
    if (!g->cout) goto fail;
    return g;
fail:
    gw_free(g);
    return NULL;
}

/* Room for max_connections + max_unauthed sockets plus our own (Kafka,
 * files): raise the soft limit as far as the hard one allows, and say so if
 * that is short. */
static void raise_fd_limit(const callbus_config *cfg) {
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->gateway.max_connections + (rlim_t)cfg->gateway.max_unauthed + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_warn("gateway: open files limit %llu is below gateway.max_connections + max_unauthed + 256 = %llu: "
                 "raise it (ulimit -n, systemd LimitNOFILE=) or lower max_connections",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

static int start_lws(gw *g, char *err, size_t errlen) {
    const callbus_config *cfg = g->cfg;
    static char host[128];
    snprintf(host, sizeof(host), "%s", cfg->gateway.listen);
    char *colon = strrchr(host, ':');
    *colon = 0;
    int port = atoi(colon + 1);
    if (host[0] == '[') { memmove(host, host + 1, strlen(host)); host[strlen(host) - 1] = 0; }

    static struct lws_http_mount mount_www;
    memset(&mount_www, 0, sizeof(mount_www));
    mount_www.mount_next = &mount_metrics;
    mount_www.mountpoint = "/";
    mount_www.mountpoint_len = 1;
    mount_www.origin = g->www_dir;
    mount_www.def = "index.html";
    mount_www.origin_protocol = LWSMPRO_FILE;

    raise_fd_limit(cfg);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = (*host && strcmp(host, "*") && strcmp(host, "0.0.0.0")) ? host : NULL;
    info.protocols = protocols;
    info.mounts = &mount_www;
    info.user = g;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
    void *loops[1] = {g->loop};
    info.foreign_loops = loops;
    info.pcontext = &g->ctx;
    info.pt_serv_buf_size = 32 * 1024;
    /* No fd_limit_per_thread: below ulimit -n it makes lws find a socket's
     * wsi by a linear search of every fd (wsi_from_fd), which cost most of
     * the CPU at 10,000 connections. raise_fd_limit() sized ulimit -n. */
    if (*cfg->gateway.tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->gateway.tls_cert;
        info.ssl_private_key_filepath = cfg->gateway.tls_key;
        g->tls = 1;
    }
    g->ctx = lws_create_context(&info);
    if (!g->ctx && evlib_missing) {
        snprintf(err, errlen, "libwebsockets cannot load its libev event-loop plugin, which the gateway "
                              "needs: install it (Debian: libwebsockets-evlib-ev)");
        return -1;
    }
    if (!g->ctx) {
        snprintf(err, errlen, "cannot listen on %s (see the lws lines above)", cfg->gateway.listen);
        return -1;
    }
    g->vh = lws_get_vhost_by_name(g->ctx, "default");
    g->port = g->vh ? lws_get_vhost_listen_port(g->vh) : port;
    return 0;
}

int gw_run(gw *g) {
    char err[512];
    log_info("gateway: site %s, loading the view from the state topics", g->cfg->site);
    sdnotify_status("loading the view from the state topics");
    if (gw_kafka_in_catch_up(g->kin, 120.0, err, sizeof(err)) < 0) {
        log_error("gateway: %s", err);
        return 1;
    }
    view_stats vs;
    view_get_stats(g->view, &vs);
    log_info("gateway: view loaded: %zu operators, %zu active calls, %zu queues, epoch %s", vs.operators,
             vs.active_calls, vs.queues, g->epoch);
    if (g->stopping) return 0;
    if (start_loop(g, err, sizeof(err)) < 0 || start_lws(g, err, sizeof(err)) < 0) {
        log_error("gateway: %s", err);
        return 1;
    }
    /* A signal that came before our watchers did is still honoured. */
    if (g->stopping) return 0;
    gw_kafka_in_wake_fd(g->kin, g->wake[1]);
    gw_commands_out_wake_fd(g->cout, g->wake[1]);
    char host[128];
    snprintf(host, sizeof(host), "%s", g->cfg->gateway.listen);
    *strrchr(host, ':') = 0;
    log_info("gateway: listening on %s://%s:%d (WebSocket %s://%s:%d/ws, www %s)", g->tls ? "https" : "http",
             host, g->port, g->tls ? "wss" : "ws", host, g->port, g->www_dir);
    sdnotify("READY=1");
    sdnotify_status("listening on port %d", g->port);
    /* What arrived between the catch-up and the wake-up fd. */
    serve_kafka(g);
    ev_run(g->loop, 0);
    sdnotify("STOPPING=1");
    log_info("gateway: stopping (%zu connections)", g->nsessions);
    return 0;
}

void gw_stop(gw *g) {
    g->stopping = 1;
}

void gw_free(gw *g) {
    if (!g) return;
    if (g->kin) gw_kafka_in_wake_fd(g->kin, -1);
    if (g->cout) gw_commands_out_wake_fd(g->cout, -1);
    stop_loop(g);
    if (g->ctx) {
        lws_context_destroy(g->ctx);
        /* lws lets go of a foreign loop's watchers as it closes; pcontext
         * turns NULL when it is done. */
        for (int i = 0; g->ctx && i < 1000; i++) ev_run(g->loop, EVRUN_NOWAIT);
        if (g->ctx) log_warn("gateway: libwebsockets did not finish closing");
    }
    if (g->loop) ev_loop_destroy(g->loop);
    for (int i = 0; i < 2; i++)
        if (g->wake[i] >= 0) close(g->wake[i]);
    gw_kafka_in_free(g->kin);
    gw_commands_out_free(g->cout);
    gw_routes_free(g);
    gw_unauthed_free(g);
    if (g->view) view_free(g->view);
    free(g->key);
    free(g);
}
