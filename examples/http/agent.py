#!/usr/bin/env python3
"""An Accord agent over plain HTTP: Python 3 standard library only.

    python3 examples/http/agent.py --url http://127.0.0.1:1234 --workflow demo \
        --agent py-agent --max-events 3 --timeout 30

1. Reads the workflow (GET /v1/workflows/:id); creates it with POST when it does not exist.
2. Appends a note to /notes with a JSON Patch (PATCH, RFC 6902). The PATCH carries
   If-Match: "<version>", so if another agent changed the workflow between our read and our
   write the server answers 412 and we read again and retry: a read-modify-write that never
   clobbers a concurrent change.
3. Follows the workflow's change stream (GET /v1/workflows/:id/events, Server-Sent Events) from
   the version our patch produced, printing one line per change record:

       change v=7 author=node-agent description="node edit #1" ops=[{"op": "replace", ...}]

   It remembers the last event id and, when the stream drops (server restart, network error,
   idle socket), reconnects with Last-Event-ID: the server replays what was missed, in order,
   exactly once.

Exit codes: 0 when --max-events records were printed (or, without --max-events, when --timeout
ran out); 1 on an HTTP error (the error code and message from the JSON body are printed to
stderr) or when --timeout ran out before --max-events records arrived; 2 on bad arguments.
"""
import argparse
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class ApiError(Exception):
    """An HTTP error answer: every Accord error body is {"error": {"code", "message", "details"}}."""

    def __init__(self, status, code, message, details=None):
        super().__init__('HTTP %d %s: %s' % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class Deadline:
    """The overall --timeout: every blocking call gets at most the time that is left."""

    def __init__(self, seconds):
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self, cap=None):
        if self.end is None:
            return cap
        left = max(self.end - time.monotonic(), 0.001)
        return left if cap is None else min(left, cap)

    def passed(self):
        return self.end is not None and time.monotonic() >= self.end


def log(message):
    print(message, file=sys.stderr, flush=True)


class Client:
    def __init__(self, base_url, agent, deadline):
        self.base = base_url.rstrip('/')
        self.agent = agent
        self.deadline = deadline

    def path(self, workflow, suffix=''):
        return '/v1/workflows/%s%s' % (urllib.parse.quote(workflow, safe=''), suffix)

    def request(self, method, path, body=None, content_type='application/json', headers=None):
        """Sends a JSON request; returns (status, headers, parsed JSON body) or raises ApiError."""
        all_headers = {'Accept': 'application/json', 'X-Accord-Agent': self.agent}
        all_headers.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode('utf-8')
            all_headers['Content-Type'] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=self.deadline.left(cap=30)) as res:
                text = res.read().decode('utf-8')
                return res.status, res.headers, (json.loads(text) if text else None)
        except urllib.error.HTTPError as err:
            raise api_error(err)

    def get(self, workflow):
        status, headers, body = self.request('GET', self.path(workflow))
        return body, headers.get('ETag')

    def create(self, workflow, state):
        return self.request('POST', '/v1/workflows', {'workflowId': workflow, 'state': state})[2]

    def patch(self, workflow, ops, if_match=None, description=None):
        headers = {}
        if if_match is not None:
            headers['If-Match'] = if_match
        if description is not None:
            # Header values are Latin-1 on the wire: the description travels URI-encoded.
            headers['X-Accord-Description'] = urllib.parse.quote(description, safe='')
        return self.request('PATCH', self.path(workflow), ops, 'application/json-patch+json', headers)[2]


def api_error(err):
    """Turns an HTTPError into an ApiError with the code and message of the JSON error body."""
    raw = err.read().decode('utf-8', 'replace')
    try:
        e = json.loads(raw)['error']
        return ApiError(err.code, e.get('code', 'UNKNOWN'), e.get('message', ''), e.get('details'))
    except (ValueError, KeyError, TypeError):
        return ApiError(err.code, 'HTTP_%d' % err.code, raw.strip()[:500] or err.reason)


def read_or_create(client, workflow):
    """GET the workflow; on 404 create it with an empty note list (409: someone else just did)."""
    try:
        return client.get(workflow)
    except ApiError as err:
        if err.code != 'NOT_FOUND':
            raise
    try:
        created = client.create(workflow, {'notes': []})
        print('created workflow %s at version %d' % (workflow, created['version']), flush=True)
    except ApiError as err:
        if err.code != 'CONFLICT':
            raise
    return client.get(workflow)


def add_note(client, workflow, note, attempts=5):
    """Appends `note` to /notes with a conditional PATCH; retries from a fresh read on 412."""
    for attempt in range(1, attempts + 1):
        current, etag = read_or_create(client, workflow)
        state = current['state']
        if isinstance(state.get('notes'), list):
            ops = [{'op': 'add', 'path': '/notes/-', 'value': note}]
        else:
            ops = [{'op': 'add', 'path': '/notes', 'value': [note]}]
        try:
            return client.patch(workflow, ops, if_match=etag, description='%s added a note' % client.agent)
        except ApiError as err:
            if err.code != 'PRECONDITION_FAILED' or attempt == attempts:
                raise
            log('version moved since our read (%s), reading again (attempt %d)' % (err.message, attempt + 1))


def format_record(record):
    ops = record.get('changes', [])
    line = 'change v=%d author=%s description=%s ops=%s' % (
        record['version'], record['author'], json.dumps(record.get('description', '')), json.dumps(ops))
    if record.get('runtimeChanges'):
        line += ' runtime=%s' % json.dumps(record['runtimeChanges'])
    return line


def sse_events(res):
    """Yields (id, event, data) per Server-Sent Event; lines starting with ':' are comments."""
    event_id, event, data = None, None, []
    while True:
        raw = res.readline()
        if not raw:
            return  # the server ended the stream
        line = raw.decode('utf-8').rstrip('\r\n')
        if line == '':
            if data or event is not None:
                yield event_id, event or 'message', '\n'.join(data)
            event_id, event, data = None, None, []
            continue
        if line.startswith(':'):
            continue
        field, _, value = line.partition(':')
        if value.startswith(' '):
            value = value[1:]
        if field == 'id':
            event_id = value
        elif field == 'event':
            event = value
        elif field == 'data':
            data.append(value)
        elif field == 'retry' and value.isdigit():
            yield None, 'retry', value


def follow(client, workflow, after, max_events):
    """Prints change records after version `after`; reconnects with Last-Event-ID when dropped."""
    last_id = str(after)
    seen = 0
    retry_s = 1.0
    url = client.base + client.path(workflow, '/events')
    while not client.deadline.passed():
        req = urllib.request.Request(url, headers={
            'Accept': 'text/event-stream', 'Last-Event-ID': last_id, 'X-Accord-Agent': client.agent})
        try:
            # The socket timeout bounds each read by the time left; a timed-out read counts as a
            # dropped stream (reconnect and resume), not as an error.
            with urllib.request.urlopen(req, timeout=client.deadline.left(cap=60)) as res:
                print('following %s after version %s' % (workflow, last_id), flush=True)
                for event_id, event, data in sse_events(res):
                    if event == 'retry':
                        retry_s = int(data) / 1000.0
                        continue
                    if event != 'change':
                        continue
                    record = json.loads(data)
                    last_id = event_id if event_id is not None else str(record['version'])
                    print(format_record(record), flush=True)
                    seen += 1
                    if max_events is not None and seen >= max_events:
                        return seen
            log('change stream ended after version %s; reconnecting' % last_id)
        except urllib.error.HTTPError as err:
            raise api_error(err)
        except (urllib.error.URLError, OSError, socket.timeout) as err:
            if client.deadline.passed():
                break
            log('change stream dropped after version %s (%s); reconnecting' % (last_id, getattr(err, 'reason', err)))
        if client.deadline.passed():
            break
        time.sleep(client.deadline.left(cap=retry_s))
    return seen


def main(argv=None):
    parser = argparse.ArgumentParser(description='Add a note to an Accord workflow over HTTP, then follow its change stream.')
    parser.add_argument('--url', default='http://127.0.0.1:1234', help='server base URL (default %(default)s)')
    parser.add_argument('--workflow', default='demo', help='workflow id (default %(default)s)')
    parser.add_argument('--agent', default='py-agent', help='agent name recorded as the author (default %(default)s)')
    parser.add_argument('--note', default=None, help='the note to append (default: "hello from <agent>")')
    parser.add_argument('--max-events', type=int, default=None, metavar='N', help='exit 0 after N change records')
    parser.add_argument('--timeout', type=float, default=None, metavar='S', help='overall time bound in seconds')
    args = parser.parse_args(argv)
    if args.max_events is not None and args.max_events < 1:
        parser.error('--max-events must be at least 1')
    if args.timeout is not None and args.timeout <= 0:
        parser.error('--timeout must be positive')

    client = Client(args.url, args.agent, Deadline(args.timeout))
    try:
        current, etag = read_or_create(client, args.workflow)
        print('read %s: version %d, ETag %s, state %s' % (
            args.workflow, current['version'], etag, json.dumps(current['state'], sort_keys=True)), flush=True)
        result = add_note(client, args.workflow, args.note or 'hello from %s' % args.agent)
        print('patched %s: version %d, notes %s' % (
            args.workflow, result['version'], json.dumps(result['state'].get('notes'))), flush=True)
        seen = follow(client, args.workflow, result['version'], args.max_events)
    except ApiError as err:
        log('error: HTTP %d %s: %s' % (err.status, err.code, err.message))
        if err.details is not None:
            log('details: %s' % json.dumps(err.details))
        return 1
    except (urllib.error.URLError, OSError) as err:
        log('error: cannot reach %s: %s' % (args.url, getattr(err, 'reason', err)))
        return 1
    except KeyboardInterrupt:
        return 130
    if args.max_events is not None and seen < args.max_events:
        log('error: timed out after %gs with %d of %d change records' % (args.timeout, seen, args.max_events))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
