"""The reference proxies the benches measure Switchyard against, nginx and HAProxy, each
configured as the proxy is: one worker (or thread), keep-alive to the backends, 70/30
between production and staging per request. Started through bench/services.py's
Supervisor on a free port, retried on a fresh one if it exits before it is ready.
"""

from __future__ import annotations

from pathlib import Path

from bench.probe import http_get
from bench.services import HOST, Child, Service, Supervisor, start_on_free_port

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections {worker_connections};
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    # Per request, like the proxy's cookie-less traffic: 30% to staging.
    split_clients "${{remote_addr}}${{request_id}}" $pool {{
        30% staging;
        *   production;
    }}

    upstream production {{
        server {production};
        keepalive 64;
    }}

    upstream staging {{
        server {staging};
        keepalive 64;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_conf(
    prefix: Path, listen_port: int, production_port: int, staging_port: int, max_conns: int
) -> str:
    return NGINX_CONF.format(
        prefix=prefix,
        listen=f"{HOST}:{listen_port}",
        production=f"{HOST}:{production_port}",
        staging=f"{HOST}:{staging_port}",
        worker_connections=max_conns,
        nofile=max_conns * 2 + 64,
    )


def start_nginx(
    sup: Supervisor, nginx: str, production: Service, staging: Service, max_conns: int
) -> Service:
    prefix = sup.workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"

    def start(port: int) -> Child:
        conf.write_text(nginx_conf(prefix, port, production.port, staging.port, max_conns))
        argv = [nginx, "-c", str(conf), "-p", f"{prefix}/", "-e", str(prefix / "error.log")]
        return sup.start("nginx", argv, extra_logs=[prefix / "error.log"])

    def check(port: int) -> bool:
        reply = http_get(port)
        return reply is not None and reply[0] == 200

    return start_on_free_port(sup, "nginx", start, check, "nginx")


HAPROXY_CONF = """\
global
    nbthread 1
    maxconn {max_conns}

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive

frontend front
    bind {listen}
    # Per request, like the proxy's cookie-less traffic: 30% to staging.
    use_backend staging if {{ rand(100) lt 30 }}
    default_backend production

backend production
    http-reuse always
    server p1 {production} maxconn {max_conns}

backend staging
    http-reuse always
    server s1 {staging} maxconn {max_conns}
"""


def start_haproxy(
    sup: Supervisor, haproxy: str, production: Service, staging: Service, max_conns: int
) -> Service:
    conf = sup.workdir / "haproxy.cfg"

    def start(port: int) -> Child:
        conf.write_text(
            HAPROXY_CONF.format(
                listen=f"{HOST}:{port}",
                production=f"{HOST}:{production.port}",
                staging=f"{HOST}:{staging.port}",
                max_conns=max_conns,
            )
        )
        return sup.start("haproxy", [haproxy, "-db", "-f", str(conf)])

    def check(port: int) -> bool:
        reply = http_get(port)
        return reply is not None and reply[0] == 200

    return start_on_free_port(sup, "haproxy", start, check, "HAProxy")
