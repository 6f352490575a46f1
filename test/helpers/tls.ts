import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'

/** Whether openssl is here to make certificates (TLS suites skip with this reason otherwise). */
export const hasOpenssl = spawnSync('openssl', ['version']).status === 0

/** A self-signed certificate for 127.0.0.1 and localhost in `dir`: its files and the PEM to trust. */
export const selfSignedCert = async (dir: string): Promise<{ cert: string, key: string, ca: Buffer }> => {
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
  if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr.toString()}`)
  return { cert, key, ca: await readFile(cert) }
}
