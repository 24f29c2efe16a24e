#!/usr/bin/env python3
"""mint_token.py -- a demo operator token, signed the way the CRM signs them
(HS256 JWT with sub, site, role, name, exp; see gateway/auth.h), so the
operator page can be opened without a CRM login. `make demo` uses it with
its own secret; so does the compose deployment.

In the compose deployment it is /usr/local/bin/callbus-demo-token in the crm
container, which has the gateways' secret at /run/secrets/jwt_secret:

  docker compose -f compose/compose.yaml exec crm callbus-demo-token tallinn op101
  docker compose -f compose/compose.yaml exec crm callbus-demo-token --role supervisor moscow sup1

It prints the operator page URL with the token (the site's gateway port on
the Docker host: tallinn 8081, moscow 8082; --url to change).
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time

GATEWAY_URLS = {"tallinn": "http://localhost:8081", "moscow": "http://localhost:8082"}


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret, sub, site, role, hours):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "site": site, "role": role, "name": sub,
                           "exp": int(time.time() + hours * 3600)}).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site")
    ap.add_argument("operator")
    ap.add_argument("--role", choices=("operator", "supervisor"), default="operator")
    ap.add_argument("--hours", type=float, default=8)
    ap.add_argument("--secret-file", default="/run/secrets/jwt_secret")
    ap.add_argument("--url", help="gateway base URL (default: the compose port of the site)")
    a = ap.parse_args()
    with open(a.secret_file, "rb") as f:
        # the gateway strips a trailing newline from an HS256 key file too
        secret = f.read().rstrip(b"\r\n")
    url = a.url or GATEWAY_URLS.get(a.site)
    t = token(secret, a.operator, a.site, a.role, a.hours)
    print(f"{url}/#token={t}" if url else t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
