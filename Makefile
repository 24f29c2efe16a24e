# callbus -- build, test, demo, bench, fuzz.
#
#   make            build the programs into build/
#   make test       install what is missing, then unit tests (plain, and under
#                   ASan+UBSan), then integration tests against a real Kafka
#   make demo       local Kafka + amisim call centre + agent + live tail
#   make bench      throughput and latency figures
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each
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
# PCRE2 for the schema patterns of `callbus check` (tools/callbus/jschema.c).
CLI_CFLAGS = $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
CLI_LIBS = $(shell pkg-config --libs libpcre2-8 2>/dev/null)

LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard lib/*.c))
AGENT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out agent/main.c,$(wildcard agent/*.c)))
GATEWAY_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out gateway/main.c,$(wildcard gateway/*.c)))
AMISIM_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/amisim/*.c))
CLI_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/callbus/*.c))
# The CLI's own libraries, unit-tested on their own.
CLI_LIB_OBJS := $(BUILD)/tools/callbus/jschema.o $(BUILD)/tools/callbus/timearg.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

PROGRAMS := $(BUILD)/callbus-agent $(BUILD)/amisim $(if $(CLI_OBJS),$(BUILD)/callbus) \
            $(if $(wildcard gateway/main.c),$(BUILD)/callbus-gateway)

.PHONY: all deps kafka-jars test unit integration integration-san browser valgrind demo bench fuzz clean
all: $(PROGRAMS)

$(BUILD)/%.o: %.c $(wildcard lib/*.h agent/*.h gateway/*.h tools/amisim/*.h tools/callbus/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/callbus-agent: $(BUILD)/agent/main.o $(AGENT_OBJS) $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/callbus-gateway: $(BUILD)/gateway/main.o $(GATEWAY_OBJS) $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS) $(GATEWAY_LIBS)

$(BUILD)/amisim: $(AMISIM_OBJS) $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tools/callbus/%.o: ALL_CFLAGS += $(CLI_CFLAGS)

$(BUILD)/callbus: $(CLI_OBJS) $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS) $(CLI_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(AGENT_OBJS) $(GATEWAY_OBJS) $(CLI_LIB_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iagent -Igateway -Itools/callbus -DFIXTURES=\"$(CURDIR)/tests/fixtures\" $^ -o $@ \
		$(LDLIBS) $(GATEWAY_LIBS) $(CLI_LIBS) -lcmocka

deps:
	@tools/setup.sh deps

kafka-jars:
	@tests/kafka/kafka.sh fetch

# Unit tests first (seconds), then the same tests under ASan+UBSan, then the
# integration suite against a real broker, then its core again with the
# ASan+UBSan programs (a sanitizer report in any process fails its test).
SAN_INTEGRATION := capture or ids_are or malformed or restart_ends or link_cut or graceful \
                   or originate or queue_commands or refusals or same_id or wait_for_ami \
                   or (cli_ops and not mirrormaker2) \
                   or (test_gateway and not site_broker_down and not slow_reader)
test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory SAN=1 all unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory integration-san
	@$(MAKE) --no-print-directory browser

unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

integration: all kafka-jars
	@tests/run-integration.sh

# The operator page in headless Chromium (Debian's), driven by playwright-core.
browser:
	@tests/browser/run.sh

integration-san: kafka-jars
	@$(MAKE) --no-print-directory SAN=1 all
	@CALLBUS_BUILD=build-san tests/run-integration.sh -k "$(SAN_INTEGRATION)"

valgrind: $(UNIT_BINS)
	@VALGRIND=1 tests/run-unit.sh $(UNIT_BINS)

demo: deps
	@$(MAKE) --no-print-directory all kafka-jars
	@tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench_parser kafka-jars
	@tests/bench/run.sh

fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-san build-fuzz

$(BUILD)/bench_parser: tests/bench/bench_parser.c $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)
