# The naive web image the comparison uses: copy the whole project, then install the
# requirements. Every code change invalidates the pip layer; pip's cache and the build
# context end up in the image. It reuses the stack's rendered entrypoint so that it deploys
# (migrations, collectstatic, healthcheck) exactly like stackctl's image.
# The only non-naive line is the ca_bundle secret: pip on this host goes through a
# TLS-intercepting proxy (see /work/shared/TESTBED.md); it changes nothing about caching.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY . .
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    pip install -r example/requirements.txt
RUN install -m 0755 compose/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /app/example
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["serve"]
