# Drives a program through a pseudo-terminal, as a person at a terminal would: the program gets a real TTY as
# its controlling terminal (stdin, stdout; stderr goes to a pipe). argv[1] is a JSON object:
#   {"argv": [...], "cwd": "...", "steps": [{"expect": REGEX} | {"send": TEXT}], "timeout": SECONDS}
# An expect waits until REGEX matches the terminal output after the previous match. Prints one JSON object:
#   {"transcript", "stderr", "exit_code", "failed": null | "expect REGEX timed out"}.
import json, os, pty, re, select, signal, sys, time, fcntl, struct, termios

spec = json.loads(sys.argv[1])
err_r, err_w = os.pipe()
pid, fd = pty.fork()
if pid == 0:
    os.dup2(err_w, 2)
    os.chdir(spec["cwd"])
    os.execvp(spec["argv"][0], spec["argv"])
os.close(err_w)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
out, err = b"", b""
deadline = time.time() + spec.get("timeout", 60)
failed = None
exit_code = None


def pump(wait):
    global out, err
    fds = [f for f in (fd, err_r) if f is not None]
    r, _, _ = select.select(fds, [], [], wait)
    closed = False
    for f in r:
        try:
            data = os.read(f, 65536)
        except OSError:
            data = b""
        if f == fd:
            if not data:
                closed = True
            out += data
        else:
            err += data
    return closed


pos = 0
for step in spec["steps"]:
    if "send" in step:
        os.write(fd, step["send"].encode())
        continue
    rx = re.compile(step["expect"], re.S)
    while True:
        m = rx.search(out.decode("utf-8", "replace"), pos)
        if m:
            pos = m.end()
            break
        if time.time() > deadline or pump(0.05) and not rx.search(out.decode("utf-8", "replace"), pos):
            failed = f"expect {step['expect']!r} timed out"
            break
    if failed:
        break

# Wait for the exit (or kill it when a step failed), reading what is left.
end = time.time() + (1 if failed else max(1, deadline - time.time()))
while exit_code is None:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        exit_code = os.waitstatus_to_exitcode(status)
        break
    if time.time() > end:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        exit_code = os.waitstatus_to_exitcode(status)
        failed = failed or "the program did not exit"
        break
    pump(0.05)
while True:
    r, _, _ = select.select([err_r], [], [], 0.2)
    if not r:
        break
    data = os.read(err_r, 65536)
    if not data:
        break
    err += data
print(json.dumps({"transcript": out.decode("utf-8", "replace"), "stderr": err.decode("utf-8", "replace"), "exit_code": exit_code, "failed": failed}))
