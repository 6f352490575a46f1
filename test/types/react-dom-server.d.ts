// react-dom ships no types and @types/react-dom is not installed: the one function the SSR test uses.
declare module 'react-dom/server' {
  export const renderToString: (element: import('react').ReactNode) => string
}
