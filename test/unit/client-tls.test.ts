/**
 * The clients' TLS options: what the environment turns on, and the
 * refusals of options that cannot work, before any connection.
 */
import test from 'ava';
import { clientTlsFromEnv } from '../../src/client/index.js';
import { grpcClientOptions } from '../../src/client/client-options.js';
import { CkptError } from '../../src/core/errors.js';

test('the environment turns TLS on with any of its variables, and not with the coordinator certificate', (t) => {
  t.is(clientTlsFromEnv({}), undefined);
  t.is(clientTlsFromEnv({ CKPT_TLS: 'false', CKPT_TLS_CERT: 'server.pem', CKPT_TLS_KEY: 'server.key' }), undefined);
  t.deepEqual(clientTlsFromEnv({ CKPT_TLS: 'true' }), {});
  t.deepEqual(clientTlsFromEnv({ CKPT_TLS: '1' }), {});
  t.deepEqual(
    clientTlsFromEnv({
      CKPT_TLS_CA: 'ca.pem',
      CKPT_TLS_CLIENT_CERT: 'c.pem',
      CKPT_TLS_CLIENT_KEY: 'c.key',
      CKPT_TLS_SERVER_NAME: 'ckpt.cluster',
    }),
    { caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'c.key', serverName: 'ckpt.cluster' },
  );
});

test('TLS options that cannot work are refused, naming the option', (t) => {
  t.throws(() => grpcClientOptions({ tls: { certFile: 'c.pem' } }), {
    instanceOf: CkptError,
    message: /tls\.certFile and tls\.keyFile: give both or neither/,
  });
  t.throws(() => grpcClientOptions({ tls: { serverName: 'not a name' } }), { message: /tls\.serverName/ });
  t.throws(() => grpcClientOptions({ tls: { caFile: '/nonexistent/ca.pem' } }), {
    message: /tls\.caFile: \/nonexistent\/ca\.pem cannot be read \(ENOENT\)/,
  });
  const plain = grpcClientOptions({});
  t.false(plain.followUnlistedLeaders);
  const named = grpcClientOptions({ tls: { serverName: 'ckpt.cluster' } });
  t.true(named.followUnlistedLeaders, 'a server name checks every leader');
  t.is(named.clientOptions['grpc.ssl_target_name_override'], 'ckpt.cluster');
  t.false(grpcClientOptions({ tls: true }).followUnlistedLeaders);
});
