// Placeholder until translated: English.
import en from "./en.js";
export default { ...en };
