// Child process for test/01.native.mkl: one fp32 GEMM large enough for libtorch to hand to its BLAS (MKL in the
// CPU wheels), under whatever LITLORA_MKL_VENDOR_CHECK the test set, then what MKL was answered. Prints one JSON line.
import { lora, Tensor, buildInfo } from '../../ts/index.js';
import { gemmInputs } from './gemm_inputs.js';

const { x, w, m, k, n } = gemmInputs();
const zerosA = Tensor.from(new Float32Array(4 * k), [4, k]), zerosB = Tensor.from(new Float32Array(n * 4), [n, 4]);
const y = await lora.forward(Tensor.from(x, [m, k]), Tensor.from(w, [n, k]), zerosA, zerosB, { scaling: 1 });
process.stdout.write(JSON.stringify({ y: Array.from(await y.data() as Float32Array), mkl: buildInfo().mklVendorCheck }) + '\n');
