// Throwaway TLS material for tests, made with openssl: a CA and a
// certificate it signed for localhost and 127.0.0.1. Tests that need it
// are ignored with a reason when openssl is missing.

/** Whether openssl is missing here. */
export const noOpenssl: boolean = (() => {
  try {
    return !new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return true;
  }
})();

/** Why TLS tests are skipped here, or undefined. */
export const OPENSSL_MISSING: string | undefined = noOpenssl
  ? "openssl is not installed; apt-get install openssl"
  : undefined;

/** A CA (PEM), and a certificate and key it signed for the loopback. */
export async function testCertificates(): Promise<
  { ca: string; cert: string; key: string }
> {
  const script = `
set -e
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -days 1 -subj /CN=midisock-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req $ec -subj /CN=localhost -keyout leaf.key -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out leaf.pem 2>/dev/null
cat ca.pem leaf.pem leaf.key
`;
  const { success, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  const pem = new TextDecoder().decode(stdout);
  const blocks = pem.match(
    /-----BEGIN [A-Z ]+-----[^]*?-----END [A-Z ]+-----\n/g,
  );
  if (blocks?.length !== 3) {
    throw new Error(`Unexpected openssl output: ${pem}`);
  }
  return { ca: blocks[0], cert: blocks[1], key: blocks[2] };
}

/** TLS material in files, for a command's `--cert` and `--key`. */
export interface CertificateFiles extends AsyncDisposable {
  /** The CA (PEM text). */
  ca: string;
  /** The certificate chain's path. */
  cert: string;
  /** The private key's path. */
  key: string;
}

/**
 * Writes test certificates to a new temporary directory (through `sh`, so
 * the test needs no write permission); disposing removes it.
 */
export async function testCertificateFiles(): Promise<CertificateFiles> {
  const { ca, cert, key } = await testCertificates();
  const { success, stdout, stderr } = await new Deno.Command("sh", {
    args: [
      "-c",
      'dir=$(mktemp -d) && printf %s "$1" > "$dir/cert.pem" && ' +
      'printf %s "$2" > "$dir/key.pem" && printf %s "$dir"',
      "sh",
      cert,
      key,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  const dir = new TextDecoder().decode(stdout);
  return {
    ca,
    cert: `${dir}/cert.pem`,
    key: `${dir}/key.pem`,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("rm", { args: ["-rf", dir] }).output();
    },
  };
}

/** Whether openssl is there. */
export const hasOpenssl: boolean = !noOpenssl;
