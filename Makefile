# callbus -- build, test, demo, bench, fuzz.
#
#   make            build the programs into build/
#   make test       install what is missing, then unit tests (plain, and under
#                   ASan+UBSan), then integration tests against a real Kafka
#   make demo       local Kafka + amisim call centre + agent + live tail
#   make bench      throughput and latency figures
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each
#   make config-docs  docs/configuration.md and the example configs, from
#                   the settings table in lib/config.c
#   make install    the programs, the operator page, the schemas and
#                   `callbus check`'s validator (tools/callbus/msgcheck.py), the example
#                   configs and the systemd units (PREFIX, DESTDIR, SYSCONFDIR,
#                   LOCALSTATEDIR, UNITDIR, SYSUSERSDIR); `make uninstall`
#   SAN=1           build with AddressSanitizer + UndefinedBehaviorSanitizer

CC ?= cc
PKGS := rdkafka jansson libconfig libwebsockets libjwt openssl
SAN ?=
FUZZ_SECONDS ?= 30

ifeq ($(SAN),1)
BUILD := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD := build
SANFLAGS :=
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ilib $(PKG_CFLAGS) $(CFLAGS) $(SANFLAGS)
LDLIBS = $(PKG_LIBS) -lpthread -lm
# libev has no pkg-config file; the gateway's event loop (gateway/server.c).
GATEWAY_LIBS := -lev

LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard lib/*.c))
AGENT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out agent/main.c,$(wildcard agent/*.c)))
GATEWAY_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out gateway/main.c,$(wildcard gateway/*.c)))
AMISIM_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/amisim/*.c))
CLI_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out tools/callbus/main.c,$(wildcard tools/callbus/*.c)))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# Each part of the code is a static archive: a program or a unit test links
# its main against them and gets only the objects it uses.
LIBCALLBUS := $(BUILD)/libcallbus.a
LIBAGENT := $(BUILD)/libagent.a
LIBGATEWAY := $(BUILD)/libgateway.a
LIBCLI := $(BUILD)/libcli.a
# Dependencies are what the compiler saw included (-MMD), not every header.
DEPS := $(patsubst %.o,%.d,$(LIB_OBJS) $(AGENT_OBJS) $(GATEWAY_OBJS) $(AMISIM_OBJS) $(CLI_OBJS) \
          $(BUILD)/agent/main.o $(BUILD)/gateway/main.o $(BUILD)/tools/callbus/main.o \
          $(BUILD)/tools/configdoc/configdoc.o) \
        $(patsubst %,%.d,$(UNIT_BINS) $(BUILD)/bench_parser $(BUILD)/bench_lookups)

PROGRAMS := $(BUILD)/callbus-agent $(BUILD)/amisim $(BUILD)/callbus $(BUILD)/callbus-gateway $(BUILD)/configdoc

.PHONY: all install uninstall deps kafka-jars test unit integration integration-san browser valgrind demo bench fuzz clean config-docs
all: $(PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBCALLBUS): $(LIB_OBJS)
$(LIBAGENT): $(AGENT_OBJS)
$(LIBGATEWAY): $(GATEWAY_OBJS)
$(LIBCLI): $(CLI_OBJS)
$(BUILD)/lib%.a:
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/callbus-agent: $(BUILD)/agent/main.o $(LIBAGENT) $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/callbus-gateway: $(BUILD)/gateway/main.o $(LIBGATEWAY) $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS) $(GATEWAY_LIBS)

$(BUILD)/amisim: $(AMISIM_OBJS) $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/configdoc: $(BUILD)/tools/configdoc/configdoc.o $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/callbus: $(BUILD)/tools/callbus/main.o $(LIBCLI) $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

# A unit test links against the archives: only the objects it uses (and
# theirs) come in, not every agent and gateway object. (Its headers are
# prerequisites too, from its .d file: they are not passed to the compiler.)
$(BUILD)/tests/%: tests/unit/%.c $(LIBAGENT) $(LIBGATEWAY) $(LIBCLI) $(LIBCALLBUS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -MF $@.d -Iagent -Igateway -Itools/callbus \
		-DFIXTURES=\"$(CURDIR)/tests/fixtures\" $(filter %.c %.a,$^) -o $@ \
		$(LDLIBS) $(GATEWAY_LIBS) -lcmocka

deps:
	@tools/setup.sh deps

kafka-jars:
	@tests/kafka/kafka.sh fetch

# Unit tests first (seconds), then the same tests under ASan+UBSan, then the
# integration suite against a real broker but for the tests marked
# `sanitizer` (tests/integration/conftest.py), then those with the ASan+UBSan
# programs: a sanitizer report of any process fails the test that was
# running. They run once, under the stricter build: twice cost CI 5 minutes
# and found nothing the sanitized run would not.
# CALLBUS_NO_SKIP=1: a missing prerequisite (Chromium, Node, npm, a program
# not built) fails its test instead of skipping it.
test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory SAN=1 all unit
	@CALLBUS_NO_SKIP=1 $(MAKE) --no-print-directory integration INTEGRATION_ARGS='-m "not sanitizer"'
	@CALLBUS_NO_SKIP=1 $(MAKE) --no-print-directory integration-san
	@$(MAKE) --no-print-directory browser

unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

integration: all kafka-jars
	@tests/run-integration.sh $(INTEGRATION_ARGS)

# The operator page in headless Chromium (Debian's), driven by playwright-core.
browser:
	@tests/browser/run.sh

integration-san: kafka-jars
	@$(MAKE) --no-print-directory SAN=1 all
	@CALLBUS_BUILD=build-san tests/run-integration.sh -m sanitizer

valgrind: $(UNIT_BINS)
	@VALGRIND=1 tests/run-unit.sh $(UNIT_BINS)

demo: deps
	@$(MAKE) --no-print-directory all kafka-jars
	@tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench_parser $(BUILD)/bench_lookups kafka-jars
	@tests/bench/run.sh

fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

# tests/integration/test_docs.py fails when these differ from the table.
config-docs: $(BUILD)/configdoc
	$(BUILD)/configdoc reference docs/configuration.md >docs/configuration.md.new
	mv docs/configuration.md.new docs/configuration.md
	$(BUILD)/configdoc example agent >agent/agent.conf.example
	$(BUILD)/configdoc example gateway >gateway/gateway.conf.example

clean:
	rm -rf build build-san build-fuzz

# Programs in $(PREFIX)/bin find their files in $(PREFIX)/share/callbus
# (lib/datadir.c), so these two are not separately settable. The agent's
# state is in /var/lib/callbus (the units' StateDirectory=); LOCALSTATEDIR
# only moves the directory made here (a staged test install).
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALLED_PROGRAMS := callbus-agent callbus-gateway callbus
SHARE := $(DESTDIR)$(PREFIX)/share/callbus
UNITS := callbus-agent.service callbus-gateway.service

# Configuration is never overwritten: only the examples are (re)installed.
# Nothing outside these files is changed (users, systemd's state): a package's
# scripts or the runbook's steps do that.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(addprefix $(BUILD)/,$(INSTALLED_PROGRAMS)) $(DESTDIR)$(PREFIX)/bin/
	rm -rf $(SHARE)/www $(SHARE)/schemas $(SHARE)/python
	install -d $(SHARE)/www $(SHARE)/schemas
	cp -R gateway/www/. $(SHARE)/www/
	install -m 0644 schemas/*.json schemas/asyncapi.yaml $(SHARE)/schemas/
	install -d $(SHARE)/python
	install -m 0644 tools/callbus/msgcheck.py $(SHARE)/python/
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/callbus
	install -m 0644 agent/agent.conf.example gateway/gateway.conf.example $(DESTDIR)$(SYSCONFDIR)/callbus/
	install -d -m 0750 $(DESTDIR)$(LOCALSTATEDIR)/lib/callbus
	for u in $(UNITS); do \
		sed -e 's|@bindir@|$(PREFIX)/bin|g' -e 's|@sysconfdir@|$(SYSCONFDIR)|g' dist/systemd/$$u.in \
			>$(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 dist/systemd/callbus.sysusers $(DESTDIR)$(SYSUSERSDIR)/callbus.conf
	@echo "installed. As root, once: systemd-sysusers $(SYSUSERSDIR)/callbus.conf (the units' users);"
	@echo "systemctl daemon-reload; then docs/runbook.md, \"Installing\"."

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(INSTALLED_PROGRAMS))
	rm -rf $(SHARE)
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(SYSUSERSDIR)/callbus.conf
	@echo "kept: $(DESTDIR)$(SYSCONFDIR)/callbus (configuration) and $(DESTDIR)$(LOCALSTATEDIR)/lib/callbus (state)"

$(BUILD)/bench_parser: tests/bench/bench_parser.c $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) -MMD -MP -MF $@.d $(filter %.c %.a,$^) -o $@ $(LDLIBS)

$(BUILD)/bench_lookups: tests/bench/bench_lookups.c $(LIBCALLBUS)
	$(CC) $(ALL_CFLAGS) -MMD -MP -MF $@.d $(filter %.c %.a,$^) -o $@ $(LDLIBS)

-include $(DEPS)
