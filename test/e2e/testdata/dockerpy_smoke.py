"""docker-py against the engine named by DOCKER_HOST.

Run by TestDockerPy (dockerpy_test.go) with E2E_IMAGE (a busybox image the engine has) and
E2E_NAME (a container name no other test uses). Prints "dockerpy ok" when every check passed;
any failed check raises, so the exit status is non-zero.
"""
import os
import sys
import time

import docker
from docker.errors import NotFound

IMAGE = os.environ["E2E_IMAGE"]
NAME = os.environ["E2E_NAME"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def poll(cond, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        ok, last = cond()
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %ss (last: %r)" % (what, timeout, last))
        time.sleep(0.1)  # poll interval


client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=60)
check(client.ping() is True, "ping")
version = client.version()
check(version.get("ApiVersion"), "version has ApiVersion: %r" % version)

# images.list / images.get
tags = [t for img in client.images.list() for t in img.tags]
check(IMAGE in tags, "images.list() has %s: %r" % (IMAGE, tags))
img = client.images.get(IMAGE)
check(img.id.startswith("sha256:"), "image id %r" % img.id)

# containers.run in the foreground returns the output.
out = client.containers.run(IMAGE, ["echo", "hello-foreground"], remove=True)
check(out == b"hello-foreground\n", "foreground run output %r" % out)

# containers.run(detach=True) + logs + exec + stop + remove
c = client.containers.run(
    IMAGE,
    ["sh", "-c", "echo hello-from-docker-py; exec sleep 300"],
    detach=True,
    name=NAME,
    labels={"e2e": "dockerpy"},
    environment={"PYVAR": "from-py"},
)
check(len(c.id) == 64, "container id %r" % c.id)


def running_with_log():
    c.reload()
    logs = c.logs().decode()
    return c.status == "running" and "hello-from-docker-py" in logs, (c.status, logs)


poll(running_with_log, "container runs and logs its greeting")
check(c.name == NAME, "name %r" % c.name)
listed = [x.name for x in client.containers.list(filters={"label": "e2e=dockerpy"})]
check(NAME in listed, "containers.list(label) has %s: %r" % (NAME, listed))

code, output = c.exec_run(["sh", "-c", "echo $PYVAR"])
check(code == 0 and output == b"from-py\n", "exec_run: %r %r" % (code, output))

c.stop(timeout=1)
c.reload()
check(c.status == "exited", "status after stop: %r" % c.status)
result = c.wait(timeout=30)
check(result.get("StatusCode") in (137, 143), "wait after stop: %r" % result)
check(c.logs() == b"hello-from-docker-py\n", "logs after stop: %r" % c.logs())

c.remove()
names = [x.name for x in client.containers.list(all=True)]
check(NAME not in names, "%s still listed after remove: %r" % (NAME, names))
try:
    client.containers.get(NAME)
    raise AssertionError("containers.get after remove did not raise NotFound")
except NotFound:
    pass

print("dockerpy ok")
sys.exit(0)
