// A real browser for tests: Debian's chromium, headless, driven by npm
// playwright-core under Node (tests/_browser_driver.mjs), so the tests need
// no permission but running `node`. Browser tests are ignored with a reason
// when either is missing, unless MIDISOCK_REQUIRE_BROWSER=1.

import { within } from "./_net.ts";

const DRIVER = new URL("./_browser_driver.mjs", import.meta.url).pathname;

/** Why no browser can run here, or undefined when one can. */
const UNAVAILABLE: string | undefined = (() => {
  try {
    const { success, stdout, stderr } = new Deno.Command("node", {
      args: [DRIVER, "--check"],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const said = new TextDecoder().decode(stdout).trim();
    if (success && said === "ok") return undefined;
    return said || new TextDecoder().decode(stderr).trim() ||
      "the browser driver failed";
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "node is not installed"
      : String(error);
  }
})();

if (UNAVAILABLE !== undefined) {
  if (Deno.env.get("MIDISOCK_REQUIRE_BROWSER") === "1") {
    throw new Error(`${UNAVAILABLE}, but MIDISOCK_REQUIRE_BROWSER=1`);
  }
  console.warn(`${UNAVAILABLE}: skipping browser tests`);
}

/** Whether browser tests must be skipped here. */
export const noBrowser: boolean = UNAVAILABLE !== undefined;

/** Why browser tests are skipped here, or undefined. */
export const BROWSER_MISSING: string | undefined = UNAVAILABLE;

/** Options of a new page. */
export interface PageOptions {
  viewport?: { width: number; height: number };
  colorScheme?: "dark" | "light";
  hasTouch?: boolean;
  deviceScaleFactor?: number;
  /** Trust any certificate (a test CA's). */
  ignoreHTTPSErrors?: boolean;
}

interface Waiting {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** A headless Chromium; `close()` (or `await using`) ends it. */
export class Browser implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #waiting = new Map<number, Waiting>();
  readonly #reading: Promise<void>;
  #stderr = "";
  #nextId = 1;
  #closing: Promise<void> | undefined;

  /**
   * Starts the browser; with `netns`, inside that network namespace (root
   * only: see tests/_wan.ts).
   */
  constructor(options: { netns?: string } = {}) {
    const command = options.netns === undefined
      ? ["node", DRIVER]
      : ["ip", "netns", "exec", options.netns, "node", DRIVER];
    this.#child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#reading = Promise.all([this.#readReplies(), this.#readErrors()])
      .then(() => {
        const gone = new Error(`The browser driver ended: ${this.#stderr}`);
        for (const waiting of this.#waiting.values()) waiting.reject(gone);
        this.#waiting.clear();
      });
  }

  async #readReplies(): Promise<void> {
    let rest = "";
    for await (
      const text of this.#child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      rest += text;
      for (let end = rest.indexOf("\n"); end >= 0; end = rest.indexOf("\n")) {
        const reply = JSON.parse(rest.slice(0, end));
        rest = rest.slice(end + 1);
        const waiting = this.#waiting.get(reply.id);
        this.#waiting.delete(reply.id);
        if (reply.ok) waiting?.resolve(reply.value);
        else waiting?.reject(new Error(reply.error));
      }
    }
  }

  async #readErrors(): Promise<void> {
    for await (
      const text of this.#child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      this.#stderr = (this.#stderr + text).slice(-4000);
    }
  }

  /** Runs one command of the driver. */
  call(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
    });
    const line = new TextEncoder().encode(
      `${JSON.stringify({ id, op, ...args })}\n`,
    );
    this.#stdin.write(line).catch(() => {});
    return within(reply, 30_000, `browser ${op}`);
  }

  /** Opens a page in a fresh context. */
  async newPage(options: PageOptions = {}): Promise<Page> {
    const id = await this.call("newPage", { ...options }) as number;
    return new Page(this, id);
  }

  /** Closes the browser and waits for the driver to end. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#stdin.close().catch(() => {});
      const late = await Promise.race([
        this.#child.status.then(() => false),
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), 10_000);
          this.#child.status.finally(() => clearTimeout(timer));
        }),
      ]);
      if (late) this.#child.kill("SIGKILL");
      await this.#child.status;
      await this.#reading;
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One page of the browser. */
export class Page {
  readonly #browser: Browser;
  readonly id: number;

  constructor(browser: Browser, id: number) {
    this.#browser = browser;
    this.id = id;
  }

  #call(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    return this.#browser.call(op, { page: this.id, ...args });
  }

  /** Runs a script before any of the page's own. */
  async addInitScript(script: string): Promise<void> {
    await this.#call("addInitScript", { script });
  }

  async goto(url: string): Promise<void> {
    await this.#call("goto", { url });
  }

  async click(selector: string): Promise<void> {
    await this.#call("click", { selector });
  }

  /** Taps with a finger (the page needs `hasTouch`). */
  async tap(selector: string): Promise<void> {
    await this.#call("tap", { selector });
  }

  async fill(selector: string, value: string): Promise<void> {
    await this.#call("fill", { selector, value });
  }

  async select(selector: string, value: string): Promise<void> {
    await this.#call("select", { selector, value });
  }

  async mouse(action: "down" | "up" | "move", x = 0, y = 0): Promise<void> {
    await this.#call("mouse", { action, x, y });
  }

  async key(action: "down" | "up" | "press", key: string): Promise<void> {
    await this.#call("key", { action, key });
  }

  async box(
    selector: string,
  ): Promise<{ x: number; y: number; width: number; height: number }> {
    return await this.#call("box", { selector }) as {
      x: number;
      y: number;
      width: number;
      height: number;
    };
  }

  /** Evaluates a function's source in the page, with one JSON argument. */
  async evaluate<T>(expression: string, arg?: unknown): Promise<T> {
    return await this.#call("evaluate", { expression, arg }) as T;
  }

  /** Waits until a function's source, run in the page, returns truthy. */
  async waitFor(expression: string, arg?: unknown, timeout = 10_000) {
    await this.#call("waitFor", { expression, arg, timeout });
  }

  async text(selector: string): Promise<string> {
    return await this.#call("text", { selector }) as string;
  }

  async screenshot(path: string, fullPage = true): Promise<void> {
    await this.#call("screenshot", { path, fullPage });
  }

  /** What the page's console said, and its uncaught errors. */
  async log(): Promise<string[]> {
    return await this.#call("log") as string[];
  }

  async close(): Promise<void> {
    await this.#call("closePage");
  }
}
