# Outlet Monitor's daemon in a container:
#   docker build -t outlet-monitor .
#   docker run -v "$PWD/config:/etc/outlet-monitor:ro" -v monitor-data:/var/lib/outlet-monitor \
#     -e SMTP_PASSWORD -p 127.0.0.1:9108:9108 outlet-monitor
# The configuration is /etc/outlet-monitor/monitor.toml; the archive /var/lib/outlet-monitor.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MONITOR_CONFIG=/etc/outlet-monitor/monitor.toml

WORKDIR /opt/outlet-monitor
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install '.[postgresql]' && useradd --system --home-dir /var/lib/outlet-monitor monitor \
    && mkdir -p /var/lib/outlet-monitor /etc/outlet-monitor \
    && chown monitor /var/lib/outlet-monitor
COPY config/monitor.toml /etc/outlet-monitor/monitor.toml

USER monitor
WORKDIR /var/lib/outlet-monitor
VOLUME ["/var/lib/outlet-monitor"]
# For `[monitor] metrics = "0.0.0.0:9108"` in the configuration.
EXPOSE 9108
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m CMD ["monitor", "health"]
STOPSIGNAL SIGTERM
CMD ["monitor", "run"]
