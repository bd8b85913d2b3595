// lambent's Node.js runtime: runs a Lambda handler (`file.export`) over the Lambda Runtime API.
//
// Built-in modules only. It loads the handler once (CommonJS `.js`/`.cjs`, or ES modules `.mjs`),
// then loops: fetch the next event, call the handler (async, promise-returning or callback style)
// with the event and a Lambda-shaped context, and post the result or the error back.
'use strict';

const http = require('http');
const path = require('path');
const fs = require('fs');
const url = require('url');

const API = process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001';
const [HOST, PORT] = [API.slice(0, API.lastIndexOf(':')), Number(API.slice(API.lastIndexOf(':') + 1))];
const PREFIX = '/2018-06-01/runtime';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, p, body, headers) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
    const req = http.request(
      { host: HOST, port: PORT, method, path: p, agent,
        headers: Object.assign({ 'Content-Length': data.length }, headers || {}) },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
    req.on('error', reject);
    req.end(data);
  });
}

function errorDocument(err, requestId) {
  const e = err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
  return {
    errorType: e.name || 'Error',
    errorMessage: e.message,
    requestId: requestId || '',
    stackTrace: (e.stack || '').split('\n').slice(1).map((l) => l.trim()),
  };
}

async function loadHandler(spec) {
  const root = process.env.LAMBDA_TASK_ROOT || '/var/task';
  const dot = spec.lastIndexOf('.');
  if (dot <= 0) throw Object.assign(new Error(`Bad handler ${spec}`), { name: 'Runtime.MalformedHandlerName' });
  const modulePath = spec.slice(0, dot);
  const exportName = spec.slice(dot + 1);
  const base = path.resolve(root, modulePath);
  let mod;
  const candidates = ['.js', '.mjs', '.cjs'].map((ext) => base + ext);
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) {
    throw Object.assign(new Error(`Cannot find module '${modulePath}'`), { name: 'Runtime.ImportModuleError' });
  }
  try {
    if (file.endsWith('.mjs')) mod = await import(url.pathToFileURL(file).href);
    else mod = require(file);
  } catch (e) {
    if (e && e.name === 'SyntaxError') e.name = 'Runtime.UserCodeSyntaxError';
    throw e;
  }
  const handler = mod[exportName] || (mod.default && mod.default[exportName]);
  if (typeof handler !== 'function') {
    throw Object.assign(new Error(`${modulePath}.${exportName} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  }
  return handler;
}

function makeContext(headers, done) {
  const deadline = Number(headers['lambda-runtime-deadline-ms'] || 0);
  const ctx = {
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    succeed: (r) => done(null, r),
    fail: (e) => done(e),
    done: (e, r) => done(e, r),
  };
  if (headers['lambda-runtime-client-context']) ctx.clientContext = JSON.parse(headers['lambda-runtime-client-context']);
  if (headers['lambda-runtime-cognito-identity']) ctx.identity = JSON.parse(headers['lambda-runtime-cognito-identity']);
  return ctx;
}

function invokeHandler(handler, event, headers) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== null && err !== undefined) reject(err); else resolve(result);
    };
    const ctx = makeContext(headers, done);
    try {
      const out = handler(event, ctx, done);
      if (out && typeof out.then === 'function') out.then((r) => done(null, r), (e) => done(e === undefined ? new Error('undefined') : e));
      else if (handler.length < 3) done(null, out);
    } catch (e) {
      done(e);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER || '');
  } catch (e) {
    const doc = errorDocument(e);
    console.error(`[ERROR] ${doc.errorType}: ${doc.errorMessage}`);
    await request('POST', `${PREFIX}/init/error`, JSON.stringify(doc),
      { 'Lambda-Runtime-Function-Error-Type': doc.errorType, 'Content-Type': 'application/json' });
    process.exit(1);
  }
  for (;;) {
    const next = await request('GET', `${PREFIX}/invocation/next`);
    if (next.status !== 200) {
      console.error(`runtime API answered ${next.status} to /next`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const id = next.headers['lambda-runtime-aws-request-id'];
    if (next.headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = next.headers['lambda-runtime-trace-id'];
    let event;
    const text = next.body.toString('utf8');
    try { event = text.length ? JSON.parse(text) : null; } catch (_) { event = text; }
    try {
      const result = await invokeHandler(handler, event, next.headers);
      const body = result === undefined ? 'null' : JSON.stringify(result);
      await request('POST', `${PREFIX}/invocation/${id}/response`, body, { 'Content-Type': 'application/json' });
    } catch (e) {
      const doc = errorDocument(e, id);
      console.error(`[ERROR] ${doc.errorType}: ${doc.errorMessage}`);
      await request('POST', `${PREFIX}/invocation/${id}/error`, JSON.stringify(doc),
        { 'Lambda-Runtime-Function-Error-Type': 'Unhandled', 'Content-Type': 'application/json' });
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
