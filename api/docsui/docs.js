// The /docs page: Swagger UI (vendored, see README.md beside this file) on
// the served document. No request leaves this origin: the spec comes from
// /openapi.yaml and the online validator badge is off.
window.addEventListener('DOMContentLoaded', function () {
  'use strict';
  window.ui = SwaggerUIBundle({
    url: '/openapi.yaml', // as written: operations in the document's order
    dom_id: '#swagger-ui',
    validatorUrl: null,
    deepLinking: true,
    docExpansion: 'list',
    defaultModelsExpandDepth: 0,
    displayOperationId: false,
    filter: true,
    tryItOutEnabled: false,
    persistAuthorization: false
  });
});
