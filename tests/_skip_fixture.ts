// Run by tests/run_test.ts through the test task's runner: two tests that
// cannot run here for one reason, one for another, one that runs.

import { skip } from "./_skip.ts";

Deno.test({ ...skip("a", "the JACK server is not running"), fn() {} });
Deno.test({ ...skip("b", "the JACK server is not running"), fn() {} });
Deno.test({ ...skip("c", undefined, "mido is not available"), fn() {} });
Deno.test({ ...skip("d", undefined), fn() {} });
